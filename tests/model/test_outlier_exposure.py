"""Outlier exposure on the class logits: text like the background reads as no evidence."""
from __future__ import annotations

import pytest
import torch

from model.config import NetworkConfig
from model.predictor import Predictor
from model.train import TrainSettings, train

TOPICS = ["the committee", "the council", "a spokesman", "the ministry", "the company", "the board"]
ACTS = ["met on tuesday to discuss", "published a report on", "announced new rules for", "will vote next week on"]
THINGS = ["the budget", "rail freight", "water supply", "the harbour bridge", "tax collection"]
BACKGROUND = [f"{t} {a} {x}" for t in TOPICS for a in ACTS for x in THINGS]  # 120 texts


def _class_margin(ckpt, texts: list[str]) -> float:
    """Mean |difference| of the n-gram head's two class logits on texts."""
    pred = Predictor.load(ckpt)
    logits, _ = pred.expectation.ngrams([e.ids for e in pred.ckpt.tokenizer.encode(texts)])
    return float((logits[:, 1] - logits[:, 0]).abs().mean())


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_encoder_loss_adds_the_cross_entropy_to_uniform_on_background(weight):
    import math

    import numpy as np

    from model.config import ModelConfig
    from model.network import Encoder
    from model.train import Example, _loss

    cfg = ModelConfig(network=NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16))
    torch.manual_seed(0)
    enc = Encoder(cfg.network).eval()  # no dropout: both losses see the same logits
    batch = [Example([101, 2000 + i, 2050, 102], -1, None, None, in_domain=False) for i in range(4)]
    base = _loss(enc, batch, cfg, np.random.default_rng(0), TrainSettings(uniform_weight=0.0))
    with_oe = _loss(enc, batch, cfg, np.random.default_rng(0), TrainSettings(uniform_weight=weight))
    # the cross-entropy of any distribution to the uniform one is at least log C
    assert (with_oe - base).item() >= weight * math.log(2) - 1e-6
    if weight == 0.0:
        assert with_oe == base


def test_ngram_head_gives_background_like_text_even_class_logits(tiny_rows, tmp_path):
    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    margins = {}
    for share in (0.0, 2.0):
        out = tmp_path / f"uniform-{share}"
        train(tiny_rows[:40], tiny_rows[40:], out, TrainSettings(epochs=1, distill=False, network=small, ngram_uniform=share),
              background=BACKGROUND[::2], state_dir=tmp_path / f"state-{share}")
        margins[share] = _class_margin(out, BACKGROUND[1::2])  # unseen texts of the same kind
    assert margins[2.0] < 0.5 * margins[0.0]


def _domain_logits(ckpt, texts: list[str]):
    """Each text's in-domain logit from the encoder, averaged over its views."""
    from model.views import text_seed

    pred = Predictor.load(ckpt)
    seqs = [e.ids for e in pred.ckpt.tokenizer.encode(texts)]
    return pred.expectation.raw(seqs, [text_seed(t) for t in texts]).domain.mean(1)


def test_refitted_in_domain_head_tells_unseen_background_from_reviews(tiny_rows, tmp_path):
    import numpy as np

    from model.metrics import auroc

    small = NetworkConfig(d_model=32, n_heads=2, d_ff=64, embed_dim=16)
    reviews = [r.text for r in tiny_rows[40:]]
    separation = {}
    for refit in (False, True):
        out = tmp_path / f"refit-{refit}"
        train(tiny_rows[:40], tiny_rows[40:], out, TrainSettings(epochs=1, distill=False, network=small, refit_domain=refit),
              background=BACKGROUND[::2], state_dir=tmp_path / f"state-{refit}")
        inside, outside = _domain_logits(out, reviews), _domain_logits(out, BACKGROUND[1::2])  # unseen texts of both kinds
        # AUROC of "not a review" by minus the in-domain logit
        separation[refit] = auroc(-torch.cat([inside, outside]).numpy(), np.r_[np.zeros(len(inside), bool), np.ones(len(outside), bool)])
        if refit:  # stored weights are float16-exact, so the reloaded head is the one that was fitted
            head = Predictor.load(out).expectation.encoder.domain.weight
            assert torch.equal(head, head.half().float())
    assert separation[True] >= 0.95  # the jointly trained head alone reads 0.44 here
    assert separation[True] - separation[False] >= 0.3


def test_background_embeddings_come_in_cached_chunks(monkeypatch, tmp_path):
    """A larger background sample reuses the teacher embeddings of a smaller one's chunks."""
    import numpy as np

    from model import teacher
    from model.train import _background_embeddings

    calls = []

    def fake_embed(texts, cache):
        calls.append(tuple(texts))
        return np.array([[float(t)] for t in texts])

    monkeypatch.setattr(teacher, "embed", fake_embed)
    texts = [str(i) for i in range(25)]
    emb = _background_embeddings(texts, tmp_path, chunk=10)
    assert emb[:, 0].tolist() == list(range(25))  # in order
    assert calls == [tuple(texts[:10]), tuple(texts[10:20]), tuple(texts[20:])]
    calls.clear()
    _background_embeddings(texts[:20], tmp_path, chunk=10)
    assert calls == [tuple(texts[:10]), tuple(texts[10:20])]  # the same keys, so the same cache files
    assert _background_embeddings([], tmp_path) is None

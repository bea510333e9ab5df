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

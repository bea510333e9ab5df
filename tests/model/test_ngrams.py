"""The n-gram head's features: per text, binary and normalised per block, batch-independent."""
from __future__ import annotations

import numpy as np

from model.config import NgramConfig
from model.ngrams import NgramFeatures


def _features(predictor) -> NgramFeatures:
    return NgramFeatures(NgramConfig(), predictor.ckpt.tokenizer)


def test_a_text_has_the_same_features_in_any_batch(default_predictor):
    f = _features(default_predictor)
    seqs = [e.ids for e in default_predictor.ckpt.tokenizer.encode(
        ["a gripping , beautifully shot film", "def main(argv): return 0", "ok"])]
    together = f(seqs).toarray()
    for i, seq in enumerate(seqs):
        assert np.array_equal(f([seq]).toarray()[0], together[i])


def test_each_block_is_binary_and_unit_length(default_predictor):
    f = _features(default_predictor)
    seq = default_predictor.ckpt.tokenizer.encode(["good good good film , good film"])[0].ids
    row = f([seq]).toarray()[0]
    blocks = (row[: f.vocab], row[f.vocab : f.vocab + f.buckets], row[f.vocab + f.buckets :])
    for block in blocks:
        assert np.isclose(np.linalg.norm(block), 1.0)
        assert len(set(np.round(block[block > 0], 12))) == 1  # repeats count once


def test_an_empty_text_has_no_features(default_predictor):
    f = _features(default_predictor)
    seq = default_predictor.ckpt.tokenizer.encode([""])[0].ids
    assert f([seq]).nnz == 0


def test_idf_is_folded_into_the_stored_weights(default_predictor):
    """With idf, the class fit reads each n-gram scaled by its inverse document frequency;
    the head applies the same map to the plain features at inference, so a text's logits
    are the regression's on its scaled features (up to the stored weights' float16)."""
    from model.logistic import logistic
    from model.ngrams import NgramHead

    tok = default_predictor.ckpt.tokenizer
    texts = ["a gripping , beautifully shot film", "dull and far too long", "a gripping tale",
             "far too dull", "beautifully acted", "too long by half"] * 3
    y = np.array([1, 0, 1, 0, 1, 0] * 3)
    seqs = [e.ids for e in tok.encode(texts)]
    f = _features(default_predictor)
    head = NgramHead.fit(f, seqs, np.eye(2)[y], [], [], idf=True)
    x = f(seqs)
    df = np.bincount(x.indices, minlength=x.shape[1])
    scaled = x.multiply(np.log((1 + len(seqs)) / (1 + df)) + 1.0).tocsr()
    decision = logistic(4.0, random_state=0).fit(scaled, y).decision_function(scaled)
    logits, _ = head(seqs)
    margin = (logits[:, 1] - logits[:, 0]).numpy()
    assert np.allclose(margin, decision, atol=0.02)
    plain, _ = NgramHead.fit(f, seqs, np.eye(2)[y], [], [])(seqs)
    assert not np.allclose((plain[:, 1] - plain[:, 0]).numpy(), margin, atol=0.02)  # idf changes the fit


def test_sublinear_features_count_repeats_and_stay_unit_length(default_predictor):
    """With sublinear_tf, a piece that recurs weighs 1 + log(count) against 1 for one seen
    once, before the block is normalised; binary features weigh them alike."""
    tok = default_predictor.ckpt.tokenizer
    seq = tok.encode(["good good good film"])[0].ids
    good, film = (tok.encode([w])[0].ids[1] for w in ("good", "film"))
    counted = NgramFeatures(NgramConfig(sublinear_tf=True), tok)
    row = counted([seq]).toarray()[0]
    assert np.isclose(row[good] / row[film], 1 + np.log(3))
    assert np.isclose(np.linalg.norm(row[: counted.vocab]), 1.0)
    binary = _features(default_predictor)([seq]).toarray()[0]
    assert np.isclose(binary[good], binary[film])

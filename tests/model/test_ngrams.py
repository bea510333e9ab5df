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

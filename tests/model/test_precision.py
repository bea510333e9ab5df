"""The transformer blocks in bfloat16 (BET_COMPUTE_DTYPE): close to float32's answers,
deterministic, and still a function of each text alone."""
from __future__ import annotations

import pytest
import torch

from model.network import COMPUTE_DTYPES
from model.predictor import Predictor
from tests.model.test_predictions import TEXTS

REVIEWS = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés from start to finish",
           "an utter waste of time", "beautifully acted and deeply felt", "neither good nor bad , just there",
           "a long review that praises the cast . " * 60]


@pytest.fixture(scope="module")
def bf16() -> Predictor:
    return Predictor.load(dtype="bfloat16")


def test_blocks_compute_in_bfloat16_and_the_rest_in_float32(bf16: Predictor):
    enc = bf16.ckpt.encoder
    assert {p.dtype for p in enc.blocks.parameters()} == {torch.bfloat16}
    others = [p for name, p in enc.named_parameters() if not name.startswith("blocks.")]
    assert others and {p.dtype for p in others} == {torch.float32}
    assert bf16.info().config["compute_dtype"] == "bfloat16"
    assert Predictor.load().info().config["compute_dtype"] == "float32"


def test_bfloat16_answers_are_close_to_float32s(bf16: Predictor, default_predictor: Predictor):
    texts = REVIEWS + TEXTS
    exact, fast = default_predictor.predict(texts), bf16.predict(texts)
    assert [a.label for a in exact] == [b.label for b in fast]
    for a, b in zip(exact, fast, strict=True):
        for k in a.probabilities:
            assert b.probabilities[k] == pytest.approx(a.probabilities[k], abs=1e-2)
        assert b.uncertainty.total == pytest.approx(a.uncertainty.total, abs=2e-2)
        assert b.uncertainty.epistemic == pytest.approx(a.uncertainty.epistemic, abs=2e-2)
    # not float32 by another name: the blocks' rounding shows in the numbers
    assert any(a.probabilities != b.probabilities for a, b in zip(exact, fast, strict=True))


def test_a_bfloat16_answer_is_the_texts_own(bf16: Predictor):
    """Each element is rounded on its own (no scale shared by a batch): alone, in a batch, in
    another order and from another load, a text gets the same numbers. Not always to the bit:
    the bfloat16 kernels may sum a product in another order for another batch shape."""
    alone = [bf16.predict([t])[0] for t in REVIEWS]
    mixed = bf16.predict(list(reversed(REVIEWS)) + ["another text that shares the batch"] * 5)
    for a, b in zip(alone, reversed(mixed[: len(REVIEWS)]), strict=True):
        assert a.label == b.label
        for k in a.probabilities:
            assert b.probabilities[k] == pytest.approx(a.probabilities[k], abs=1e-6)
        assert b.uncertainty.total == pytest.approx(a.uncertainty.total, abs=1e-6)
        assert b.uncertainty.epistemic == pytest.approx(a.uncertainty.epistemic, abs=1e-6)
    assert Predictor.load(dtype="bfloat16").predict(REVIEWS) == bf16.predict(REVIEWS)


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="float16"):
        Predictor.load(dtype="float16")
    assert set(COMPUTE_DTYPES) == {"float32", "bfloat16"}

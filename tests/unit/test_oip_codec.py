"""The Open Inference Protocol's codec in the core (server/core/oip.py): what it accepts,
what it refuses (as a malformed tensor, the protocol's 400) and how it writes outputs."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from server.core import oip, schemas
from server.errors import InvalidInput, MalformedTensor, ModelNotFound


def _raw(*texts: bytes) -> bytes:
    return oip.encode_bytes(texts)


def _request(tensor: oip.Tensor, **parameters: object) -> oip.InferRequest:
    return oip.InferRequest([tensor], dict(parameters))


def test_bytes_round_trip_and_refuse_a_prefix_past_the_end() -> None:
    assert oip.decode_bytes(_raw(b"good", b"", "é".encode())) == [b"good", b"", "é".encode()]
    with pytest.raises(MalformedTensor, match="claims 9 bytes"):
        oip.decode_bytes(struct.pack("<I", 9) + b"ab")
    with pytest.raises(MalformedTensor, match="too few for a 4-byte length prefix"):
        oip.decode_bytes(_raw(b"ok") + b"\x01\x00")


@pytest.mark.parametrize("shape", [[2], [2, 1]])
def test_texts_from_json_data_raw_bytes_and_nested_lists(shape: list[int]) -> None:
    for tensor in (oip.Tensor("text", "BYTES", shape, elements=["a", "b"]),
                   oip.Tensor("text", "BYTES", shape, elements=[["a"], ["b"]]),
                   oip.Tensor("any name", "BYTES", shape, raw=_raw(b"a", b"b"))):
        batch, threshold = oip.to_batch(_request(tensor))
        assert batch.texts == ["a", "b"] and batch.confidence_threshold == 0.0 and threshold == 0.5


@pytest.mark.parametrize("tensor, message", [
    (oip.Tensor("text", "FP32", [1], elements=[1.0]), "datatype 'FP32'"),
    (oip.Tensor("text", "BYTES", [3], elements=["a", "b"]), "shape \\[3\\] but holds 2"),
    (oip.Tensor("text", "BYTES", [1, 2], elements=["a", "b"]), "texts are \\[N\\] or \\[N, 1\\]"),
    (oip.Tensor("text", "BYTES", [1], raw=b"\xff\xff\xff\xff"), "claims"),
    (oip.Tensor("text", "BYTES", [1], raw=_raw(b"\xff")), "not UTF-8"),
    (oip.Tensor("text", "BYTES", [1], elements=[3]), "int, not text"),
    (oip.Tensor("text", "BYTES", [0], elements=[]), "holds no text"),
])
def test_malformed_tensors_are_refused_with_a_message(tensor: oip.Tensor, message: str) -> None:
    with pytest.raises(MalformedTensor, match=message):
        oip.to_batch(_request(tensor))


def test_texts_the_native_batch_refuses_are_its_invalid_input() -> None:
    with pytest.raises(InvalidInput) as refused:
        oip.to_batch(_request(oip.Tensor("text", "BYTES", [1], elements=["x" * 10_001])))
    assert not isinstance(refused.value, MalformedTensor)


@pytest.mark.parametrize("given, expected", [(0.8, 0.8), (1, 1.0), ("0.25", 0.25), ("1e-1", 0.1), (".5", 0.5)])
def test_the_threshold_comes_as_a_double_an_int64_or_a_string(given: object, expected: float) -> None:
    tensor = oip.Tensor("text", "BYTES", [1], elements=["a"])
    assert oip.to_batch(_request(tensor, confidence_threshold=given))[1] == expected


@pytest.mark.parametrize("given", [True, "high", 1.5, float("nan"), " 0.5", "inf", "1_0", "0x1", None])
def test_a_bad_threshold_is_refused(given: object) -> None:
    with pytest.raises(MalformedTensor):
        oip.to_batch(_request(oip.Tensor("text", "BYTES", [1], elements=["a"]), confidence_threshold=given))


@pytest.mark.parametrize("given, expected", [(True, True), (False, False), ("TRUE", True), ("false", False),
                                             ("False", False)])
def test_a_flag_comes_as_a_boolean_or_its_word(given: object, expected: bool) -> None:
    assert oip.parameter({"return_cot": given}, "return_cot") is expected
    assert oip.parameter({}, "return_cot") is False and oip.parameter({}, "return_uncertainty") is True


@pytest.mark.parametrize("given", ["yes", 1, 0, None, "truee", " true", [True]])
def test_a_bad_flag_is_refused(given: object) -> None:
    with pytest.raises(MalformedTensor, match="not a boolean"):
        oip.parameter({"return_uncertainty": given}, "return_uncertainty")
    with pytest.raises(MalformedTensor, match="not a boolean"):
        oip.parameter({"binary_data": given}, "binary_data", oip.OUTPUT_PARAMETERS, default=True)


@pytest.mark.parametrize("elements", [[["a", "b"]], [[["a"]]], [[]]])
def test_json_data_nests_at_most_as_n_by_1(elements: list) -> None:
    with pytest.raises(MalformedTensor, match="nest at most as"):
        oip.to_batch(_request(oip.Tensor("text", "BYTES", [len(elements)], elements=elements)))


def _answer(confidence: float) -> schemas.PredictResponse:
    return schemas.PredictResponse(
        prediction="positive", label_id=1, confidence=confidence,
        probabilities={"negative": 1 - confidence, "positive": confidence},
        uncertainty=schemas.Uncertainty(total=0.3, aleatoric=0.2, epistemic=0.1),
        cot_length=4, reasoning=["good +0.5"], model_version="1")


def test_outputs_hold_the_answers_and_accepted_compares_with_the_threshold() -> None:
    request = _request(oip.Tensor("text", "BYTES", [2], elements=["a", "b"]))
    outputs = {o.name: o for o in oip.to_outputs(request, [_answer(0.9), _answer(0.6)],
                                                 ["negative", "positive"], threshold=0.7)}
    assert list(outputs) == ["label", "label_id", "confidence", "probabilities", "uncertainty_total",
                             "uncertainty_aleatoric", "uncertainty_epistemic", "accepted"]
    assert outputs["probabilities"].shape == [2, 2]
    assert outputs["probabilities"].values == [pytest.approx(0.1), 0.9, pytest.approx(0.4), 0.6]
    assert outputs["accepted"].values == [True, False]
    assert np.frombuffer(outputs["confidence"].raw(), "<f8").tolist() == [0.9, 0.6]
    assert oip.decode_bytes(outputs["label"].raw()) == [b"positive", b"positive"]


def test_outputs_are_filtered_and_options_leave_parts_out() -> None:
    tensor = oip.Tensor("text", "BYTES", [1], elements=["a"])
    chosen = oip.InferRequest([tensor], {}, ["confidence", "reasoning"])
    assert [o.name for o in oip.to_outputs(chosen, [_answer(0.9)], ["negative", "positive"], 0.5)] == [
        "confidence", "reasoning"]
    assert oip.to_batch(chosen)[0].return_cot  # asked for reasoning: computed
    plain = _request(tensor, return_uncertainty=False, return_cot=True)
    names = [o.name for o in oip.to_outputs(plain, [_answer(0.9)], ["negative", "positive"], 0.5)]
    assert "uncertainty_total" not in names and names[-2:] == ["cot_length", "reasoning"]
    with pytest.raises(MalformedTensor, match="unknown output 'logits'"):
        oip.to_batch(oip.InferRequest([tensor], {}, ["logits"]))


def test_only_the_served_model_and_its_serving_version_answer() -> None:
    oip.check_model("bet", "", "bet", "2")
    oip.check_model("bet", "2", "bet", "2")
    for name, version in (("other", ""), ("bet", "1")):
        with pytest.raises(ModelNotFound):
            oip.check_model(name, version, "bet", "2")

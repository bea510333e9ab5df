"""The two converter modules: protobuf <-> core types, and core errors -> REST bodies."""
from __future__ import annotations

import orjson
import pytest
from google.protobuf import any_pb2
from google.rpc import status_pb2

from server.core import schemas
from server.errors import BelowThreshold, InvalidInput, Overloaded, UnparsableInput
from server.grpc import converters as grpc_conv
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.rest import converters as rest_conv

FULL = schemas.PredictResponse(
    prediction="positive", label_id=1, confidence=0.875, probabilities={"negative": 0.125, "positive": 0.875},
    uncertainty=schemas.Uncertainty(total=0.37, aleatoric=0.3, epistemic=0.07),
    cot_length=4, reasoning=["a", "b"], model_version="v1",
)
BARE = FULL.model_copy(update={"uncertainty": None, "cot_length": None, "reasoning": None})
EMPTY_REASONING = FULL.model_copy(update={"reasoning": []})


@pytest.mark.parametrize("answer", [FULL, BARE, EMPTY_REASONING])
def test_response_round_trip(answer: schemas.PredictResponse) -> None:
    wire = pb.PredictResponse.FromString(grpc_conv.to_pb_response(answer).SerializeToString())
    assert grpc_conv.from_pb_response(wire) == answer


def test_unset_options_take_the_contract_defaults() -> None:
    request = grpc_conv.to_predict_request(pb.PredictRequest(text="  hi  "))
    assert request == schemas.PredictRequest(text="hi")
    assert (request.return_uncertainty, request.return_cot, request.confidence_threshold) == (True, False, 0.5)
    explicit = grpc_conv.to_predict_request(
        pb.PredictRequest(text="hi", return_uncertainty=False, return_cot=True, confidence_threshold=0.0))
    assert (explicit.return_uncertainty, explicit.return_cot, explicit.confidence_threshold) == (False, True, 0.0)


def test_batch_request() -> None:
    request = grpc_conv.to_batch_request(pb.PredictBatchRequest(texts=["a", " b "], return_cot=True))
    assert request.texts == ["a", "b"] and request.return_cot


def test_undecodable_and_oversized_messages() -> None:
    read = grpc_conv.safe_deserializer(pb.PredictRequest.FromString, max_bytes=16)
    with pytest.raises(UnparsableInput):
        grpc_conv.to_predict_request(read(b"\xff\xff"))
    with pytest.raises(InvalidInput, match="limit"):
        grpc_conv.to_predict_request(read(pb.PredictRequest(text="x" * 40).SerializeToString()))
    assert grpc_conv.to_predict_request(read(pb.PredictRequest(text="ok").SerializeToString())).text == "ok"


def test_model_info_round_trip() -> None:
    info = schemas.ModelInfo(name="bet", version="1", labels=["a", "b"], n_views=4, n_draws=32, window_pieces=126,
                             max_windows=256, digest="d",
                             created_at="2025-01-01T00:00:00Z",
                             config={"network": {"d_model": 128.0}, "views": {"offsets": True}},
                             metrics={"accuracy": 0.9, "ece": 0.02})
    assert grpc_conv.from_pb_model_info(grpc_conv.to_pb_model_info(info)) == info


def test_grpc_status_details() -> None:
    status = grpc_conv.to_status(BelowThreshold("low", FULL))
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    packed: any_pb2.Any = status_pb2.Status.FromString(details).details[0]
    answer = pb.PredictResponse()
    assert packed.Unpack(answer) and grpc_conv.from_pb_response(answer) == FULL


def test_rest_error_bodies() -> None:
    low = rest_conv.error_response(BelowThreshold("low", FULL))
    assert low.status_code == 422
    assert orjson.loads(low.body) == {"detail": "low", "prediction": FULL.model_dump(exclude_none=True)}
    busy = rest_conv.error_response(Overloaded("busy", retry_after_s=2))
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
    frame = orjson.loads(rest_conv.stream_error_frame(InvalidInput("bad")))
    assert frame == {"status": 422, "detail": "bad"}
    assert "null" not in rest_conv.to_json(BARE).decode()

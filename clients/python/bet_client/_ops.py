"""What each call sends and how its answer reads, on both transports, with no I/O: the
transports execute an `Op`, the clients retry it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from google.protobuf import message as pb_message
from grpc_health.v1 import health_pb2

from bet_client.gen.bet.v1 import inference_pb2 as pb
from bet_client.gen.models import ModelInfo, PredictBatchResponse, PredictResponse, ReloadResponse

T = TypeVar("T")


@dataclass(frozen=True)
class Health:
    """`live`: the server answers; `ready`: its model is loaded and warm."""

    live: bool
    ready: bool


def to_dict(message: pb_message.Message) -> dict[str, Any]:
    """A response message as the REST answer's JSON holds it: every field by its proto name,
    and `reasoning` only with `cot_length` (REST leaves both out without CoT)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    for item in data.get("predictions", [data]):
        if "prediction" in item and "cot_length" not in item:
            item.pop("reasoning", None)
    return data


@dataclass(frozen=True)
class Op(Generic[T]):
    """One unary call. `rpc` names the method as "Service.Method" on the gRPC stubs."""

    rpc: str
    message: pb_message.Message
    http_method: str
    path: str
    body: dict[str, Any] | None
    from_json: Callable[[int, Any], T]  # (HTTP status, JSON body) → answer, for `http_ok`
    from_pb: Callable[[Any], T]
    http_ok: frozenset[int] = frozenset({200})
    retry: bool = True


def options(return_uncertainty: bool | None, return_cot: bool | None,
            confidence_threshold: float | None) -> dict[str, Any]:
    """The options given; the server's defaults hold for the others."""
    given = {"return_uncertainty": return_uncertainty, "return_cot": return_cot,
             "confidence_threshold": confidence_threshold}
    return {name: value for name, value in given.items() if value is not None}


def _model(cls: Any) -> tuple[Callable[[int, Any], Any], Callable[[Any], Any]]:
    return (lambda status, body: cls.model_validate(body)), (lambda reply: cls.model_validate(to_dict(reply)))


def predict(text: str, opts: dict[str, Any]) -> Op[PredictResponse]:
    body = {"text": text, **opts}
    return Op("Inference.Predict", pb.PredictRequest(**body), "POST", "/v1/predict", body,
              *_model(PredictResponse))


def predict_batch(texts: list[str], opts: dict[str, Any]) -> Op[PredictBatchResponse]:
    body = {"texts": texts, **opts}
    return Op("Inference.PredictBatch", pb.PredictBatchRequest(**body), "POST", "/v1/predict/batch",
              body, *_model(PredictBatchResponse))


def model_info() -> Op[ModelInfo]:
    return Op("Inference.GetModelInfo", pb.GetModelInfoRequest(), "GET", "/v1/model", None,
              *_model(ModelInfo))


def reload(version: str | None) -> Op[ReloadResponse]:
    # Not retried: a second try could switch versions twice.
    body = {} if version is None else {"version": version}
    return Op("Inference.ReloadModel", pb.ReloadModelRequest(**body), "POST", "/v1/admin/reload", body,
              *_model(ReloadResponse), retry=False)


def health() -> Op[Health]:
    # REST answers 503 while the model is not ready; gRPC answers NOT_SERVING. Either is
    # an answer from a live server, not an error, and is not retried.
    return Op(
        "Health.Check", health_pb2.HealthCheckRequest(service=""), "GET", "/health/ready", None,
        from_json=lambda status, body: Health(live=True, ready=status == 200),
        from_pb=lambda reply: Health(live=True, ready=reply.status == health_pb2.HealthCheckResponse.SERVING),
        http_ok=frozenset({200, 503}), retry=False,
    )


def stream_request(text: str, opts: dict[str, Any]) -> dict[str, Any]:
    return {"text": text, **opts}

"""Conversions between the protobuf wire types and the core's types, and from the core's
errors to a gRPC status (code, message and google.rpc.Status details)."""
from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.core import schemas, telemetry
from server.core.validation import parse
from server.errors import BelowThreshold, PayloadTooLarge, ServiceError, UnparsableInput, wire_of
from server.grpc.gen.bet.v1 import inference_pb2 as pb

_OPTIONS = ("return_uncertainty", "return_cot", "confidence_threshold")


class Undecodable:
    """Stands in for a request message that could not be read, so that the servicer answers
    INVALID_ARGUMENT (grpc itself would answer INTERNAL)."""

    def __init__(self, error: ServiceError) -> None:
        self.error = error


def safe_deserializer(deserialize: Callable[[bytes], Any], max_bytes: int) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        if len(data) > max_bytes:
            return Undecodable(PayloadTooLarge(f"the message is {len(data)} bytes; the limit is {max_bytes}"))
        try:
            return deserialize(data)
        except Exception:
            return Undecodable(UnparsableInput("the message could not be decoded"))

    return read


def _fields(message: Any, texts: str) -> dict[str, Any]:
    """The message's set fields: `texts` names the text field, then the options present."""
    if isinstance(message, Undecodable):
        raise message.error
    texts_value = getattr(message, texts)
    fields = {texts: texts_value if isinstance(texts_value, str) else list(texts_value)}
    return fields | {name: getattr(message, name) for name in _OPTIONS if message.HasField(name)}


def to_predict_request(message: pb.PredictRequest) -> schemas.PredictRequest:
    return parse(schemas.PredictRequest, _fields(message, "text"))


def to_batch_request(message: pb.PredictBatchRequest) -> schemas.PredictBatchRequest:
    return parse(schemas.PredictBatchRequest, _fields(message, "texts"))


def to_pb_response(answer: schemas.PredictResponse) -> pb.PredictResponse:
    message = pb.PredictResponse(
        prediction=answer.prediction,
        label_id=answer.label_id,
        confidence=answer.confidence,
        probabilities=answer.probabilities,
        model_version=answer.model_version,
    )
    if answer.uncertainty is not None:
        message.uncertainty.CopyFrom(pb.Uncertainty(**answer.uncertainty.model_dump()))
    if answer.cot_length is not None:
        message.cot_length = answer.cot_length
        message.reasoning.extend(answer.reasoning or [])
    return message


def from_pb_response(message: pb.PredictResponse) -> schemas.PredictResponse:
    """The inverse of to_pb_response (for clients and tests)."""
    has_cot = message.HasField("cot_length")
    return schemas.PredictResponse(
        prediction=message.prediction,
        label_id=message.label_id,
        confidence=message.confidence,
        probabilities=dict(message.probabilities),
        uncertainty=schemas.Uncertainty(
            total=message.uncertainty.total,
            aleatoric=message.uncertainty.aleatoric,
            epistemic=message.uncertainty.epistemic,
        ) if message.HasField("uncertainty") else None,
        cot_length=message.cot_length if has_cot else None,
        reasoning=list(message.reasoning) if has_cot else None,
        model_version=message.model_version,
    )


def to_pb_batch(answer: schemas.PredictBatchResponse) -> pb.PredictBatchResponse:
    return pb.PredictBatchResponse(predictions=[to_pb_response(a) for a in answer.predictions])


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def to_pb_model_info(info: schemas.ModelInfo) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=info.name, version=info.version, labels=info.labels, n_views=info.n_views,
        n_draws=info.n_draws, window_pieces=info.window_pieces, max_windows=info.max_windows,
        digest=info.digest, created_at=info.created_at,
        config=_struct(info.config), metrics=_struct(info.metrics),
        versions=[pb.ModelVersion(**v.model_dump()) for v in info.versions],
    )


def from_pb_model_info(message: pb.ModelInfo) -> schemas.ModelInfo:
    return schemas.ModelInfo(
        name=message.name, version=message.version, labels=list(message.labels),
        n_views=message.n_views, n_draws=message.n_draws, window_pieces=message.window_pieces,
        max_windows=message.max_windows, digest=message.digest, created_at=message.created_at,
        config=json_format.MessageToDict(message.config),
        metrics=json_format.MessageToDict(message.metrics),
        versions=[schemas.ModelVersion(version=v.version, created_at=v.created_at, serving=v.serving)
                  for v in message.versions],
    )


def to_reload_request(message: pb.ReloadModelRequest) -> schemas.ReloadRequest:
    if isinstance(message, Undecodable):
        raise message.error
    return parse(schemas.ReloadRequest, {"version": message.version} if message.HasField("version") else {})


def to_pb_reload(answer: schemas.ReloadResponse) -> pb.ReloadModelResponse:
    return pb.ReloadModelResponse(previous_version=answer.previous_version,
                                  model=to_pb_model_info(answer.model))


RETRY_AFTER = "retry-after"  # trailing metadata: seconds, as REST's Retry-After header


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def to_status(error: ServiceError) -> grpc.Status:
    """The error's row of the table, with the answer (below threshold) or the retry advice
    (overload) packed into the google.rpc.Status details."""
    details = []
    if isinstance(error, BelowThreshold):
        answer = error.answer
        packed = any_pb2.Any()
        packed.Pack(to_pb_batch(answer) if isinstance(answer, schemas.PredictBatchResponse)
                    else to_pb_response(answer))
        details.append(packed)
    if error.retry_after_s is not None:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=error.retry_after_s)))
        details.append(packed)
    code = wire_of(error).grpc_code
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=error.detail, details=details)
    )
    if error.retry_after_s is None:
        return status
    # also as plain trailing metadata, readable without decoding the details
    return _Status(status.code, status.details,
                   (*status.trailing_metadata, (RETRY_AFTER, str(error.retry_after_s))))


async def abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    telemetry.mark(error.outcome)
    await context.abort_with_status(to_status(error))

"""Typed errors, one class per row of the service's error table, raised alike whichever
transport answered; and the two translations into them, from an HTTP answer and from a
gRPC status."""
from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf import message as pb_message
from google.rpc import error_details_pb2, status_pb2

from bet_client._ops import to_dict
from bet_client.gen.bet.v1 import inference_pb2 as pb
from bet_client.gen.models import PredictBatchResponse, PredictResponse


class BetError(Exception):
    """An answer that is not the result asked for. `detail` is the server's message;
    `http_status` / `code` say what came over the wire (one of them, by transport)."""

    http_statuses: ClassVar[tuple[int, ...]] = ()  # the REST statuses of this row
    grpc_codes: ClassVar[tuple[grpc.StatusCode, ...]] = ()  # the gRPC codes of this row

    def __init__(self, detail: str, *, http_status: int | None = None,
                 code: grpc.StatusCode | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after  # seconds the server asked the caller to wait, if it did


class InvalidArgumentError(BetError):
    """Malformed, oversized or out-of-range input, or a body that is not JSON (REST 400 / 413 / 415 /
    422, gRPC INVALID_ARGUMENT)."""

    http_statuses = (400, 413, 415, 422)
    grpc_codes = (grpc.StatusCode.INVALID_ARGUMENT,)


class LowConfidenceError(BetError):
    """The confidence is below the request's threshold; `prediction` is the answer anyway
    (a PredictResponse for predict, a PredictBatchResponse for predict_batch)."""

    grpc_codes = (grpc.StatusCode.FAILED_PRECONDITION,)

    def __init__(self, detail: str, prediction: PredictResponse | PredictBatchResponse, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.prediction = prediction


class UnauthenticatedError(BetError):
    http_statuses = (401,)
    grpc_codes = (grpc.StatusCode.UNAUTHENTICATED,)


class PermissionDeniedError(BetError):
    http_statuses = (403,)
    grpc_codes = (grpc.StatusCode.PERMISSION_DENIED,)


class NotFoundError(BetError):
    http_statuses = (404,)
    grpc_codes = (grpc.StatusCode.NOT_FOUND,)


class ConflictError(BetError):
    """The server cannot do it in its present state, e.g. load a model version that is
    broken (REST 409, gRPC FAILED_PRECONDITION without a prediction)."""

    http_statuses = (409,)
    grpc_codes = (grpc.StatusCode.FAILED_PRECONDITION,)


class RateLimitedError(BetError):
    """The caller's rate limit is spent; `retry_after` says when to come back."""

    http_statuses = (429,)
    grpc_codes = (grpc.StatusCode.RESOURCE_EXHAUSTED,)


class UnavailableError(BetError):
    """Overloaded, not ready, draining, or not reachable at all; worth another try."""

    http_statuses = (502, 503)
    # CANCELLED: grpc cancels a call it took in but had not yet handed to the service when
    # the server stops (a draining worker, docs/adr/0004-supervision.md), so it was never
    # answered. A caller's own cancellation never arrives as an error: grpc's asyncio API
    # raises CancelledError, and the sync calls cannot be cancelled mid-flight.
    grpc_codes = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class DeadlineExceededError(BetError, TimeoutError):
    """The call's timeout passed, on the client's clock or on the server's (504; 408 when
    the request itself came too slowly)."""

    http_statuses = (408, 504)
    grpc_codes = (grpc.StatusCode.DEADLINE_EXCEEDED,)


class InternalError(BetError):
    http_statuses = (500,)
    grpc_codes = (grpc.StatusCode.INTERNAL,)


_ROWS = (InvalidArgumentError, UnauthenticatedError, PermissionDeniedError, NotFoundError, ConflictError,
         RateLimitedError, UnavailableError, DeadlineExceededError, InternalError)
_BY_STATUS = {status: cls for cls in _ROWS for status in cls.http_statuses}
_BY_CODE = {code: cls for cls in _ROWS for code in cls.grpc_codes}


def _seconds(header: str | None) -> float | None:
    try:
        return max(float(header), 0.0) if header is not None else None
    except ValueError:
        return None  # an HTTP date: not worth honouring exactly


def from_http(status: int, body: Any, retry_after: str | None = None) -> BetError:
    """The error for a REST answer with a non-2xx status and its JSON body (None if it had
    none), or for a WebSocket error frame."""
    body = body if isinstance(body, dict) else {}
    detail = str(body.get("detail") or f"HTTP {status}")
    kwargs: dict[str, Any] = {"http_status": status, "retry_after": _seconds(retry_after)}
    if status == 422 and body.get("prediction") is not None:
        return LowConfidenceError(detail, PredictResponse.model_validate(body["prediction"]), **kwargs)
    if status == 422 and body.get("predictions") is not None:
        return LowConfidenceError(detail, PredictBatchResponse.model_validate(body), **kwargs)
    return _BY_STATUS.get(status, BetError)(detail, **kwargs)


_STATUS_KEY = "grpc-status-details-bin"


def _status_details(trailing: Any) -> list[any_pb2.Any]:
    for key, value in trailing or ():
        if key == _STATUS_KEY:
            return list(status_pb2.Status.FromString(value).details)
    return []


M = TypeVar("M", bound=pb_message.Message)


def _unpack(packed: any_pb2.Any, message: M) -> M | None:
    return message if packed.Is(message.DESCRIPTOR) and packed.Unpack(message) else None  # type: ignore[arg-type]


def from_grpc(error: grpc.RpcError) -> BetError:
    """The error for a failed gRPC call (sync or asyncio), with the answer or the retry
    advice that the server packed into the status details."""
    call: Any = error  # a grpc.Call (sync) or AioRpcError: code(), details(), trailing_metadata()
    code: grpc.StatusCode = call.code()
    detail = call.details() or code.name
    kwargs: dict[str, Any] = {"code": code}
    answer: PredictResponse | PredictBatchResponse | None = None
    for packed in _status_details(call.trailing_metadata()):
        if (info := _unpack(packed, error_details_pb2.RetryInfo())) is not None:
            kwargs["retry_after"] = info.retry_delay.ToTimedelta().total_seconds()
        elif (single := _unpack(packed, pb.PredictResponse())) is not None:
            answer = PredictResponse.model_validate(to_dict(single))
        elif (batch := _unpack(packed, pb.PredictBatchResponse())) is not None:
            answer = PredictBatchResponse.model_validate(to_dict(batch))
    if code == grpc.StatusCode.FAILED_PRECONDITION and answer is not None:
        return LowConfidenceError(detail, answer, **kwargs)
    return _BY_CODE.get(code, BetError)(detail, **kwargs)

"""The errors the service answers with, and the one table that maps each to its REST status
and gRPC code. Both doors translate through `wire_of`; nothing else picks a status."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import grpc


class ServiceError(Exception):
    """An answer that is not a prediction. `detail` is safe to show a caller."""

    outcome: ClassVar[str] = "error"  # label for metrics and logs

    def __init__(self, detail: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s  # sent as Retry-After / RetryInfo when set


class InvalidInput(ServiceError):
    outcome = "invalid_input"


class UnparsableInput(InvalidInput):
    """A body that is not JSON (or not a protobuf message) at all."""

    outcome = "unparsable"


class MalformedTensor(InvalidInput):
    """An Open Inference Protocol request whose tensors cannot be read: a wrong datatype, a
    shape that disagrees with the data, a bad length prefix (the protocol's 400)."""

    outcome = "malformed_tensor"


class UnsupportedMediaType(InvalidInput):
    """A REST body whose content type is not JSON's."""

    outcome = "unsupported_media_type"


class PayloadTooLarge(InvalidInput):
    """A body or message over the size limit, refused before it is parsed."""

    outcome = "too_large"


class SlowRequest(ServiceError):
    """The request body did not arrive in time; the connection is not held for it."""

    outcome = "slow_request"


class BelowThreshold(ServiceError):
    """The prediction is made but its confidence is under the caller's threshold; the error
    carries the answer (a PredictResponse or PredictBatchResponse) so it is not lost."""

    outcome = "below_threshold"

    def __init__(self, detail: str, answer: Any) -> None:
        super().__init__(detail)
        self.answer = answer


class Unauthenticated(ServiceError):
    outcome = "unauthenticated"


class PermissionDenied(ServiceError):
    outcome = "permission_denied"


class RateLimited(ServiceError):
    outcome = "rate_limited"


class Overloaded(ServiceError):
    """The queue is full or the server is draining: refused at once, try again later."""

    outcome = "overloaded"


class NotReady(ServiceError):
    outcome = "not_ready"


class DeadlineExceeded(ServiceError):
    """The request waited past its deadline and was dropped before it was computed."""

    outcome = "deadline_exceeded"


class ModelNotFound(ServiceError):
    """A reload asked for a version the model store does not hold."""

    outcome = "model_not_found"


class ModelLoadFailed(ServiceError):
    """A version could not be loaded or warmed (missing or corrupt file, digest mismatch,
    incompatible config); the version serving before keeps serving."""

    outcome = "model_load_failed"


class Internal(ServiceError):
    """A fault of ours; the detail never includes the cause (that goes to the log)."""

    outcome = "internal"


@dataclass(frozen=True)
class Wire:
    http_status: int
    grpc_code: grpc.StatusCode


ERROR_TABLE: dict[type[ServiceError], Wire] = {
    UnparsableInput: Wire(400, grpc.StatusCode.INVALID_ARGUMENT),
    MalformedTensor: Wire(400, grpc.StatusCode.INVALID_ARGUMENT),
    UnsupportedMediaType: Wire(415, grpc.StatusCode.INVALID_ARGUMENT),
    InvalidInput: Wire(422, grpc.StatusCode.INVALID_ARGUMENT),
    PayloadTooLarge: Wire(413, grpc.StatusCode.INVALID_ARGUMENT),
    SlowRequest: Wire(408, grpc.StatusCode.DEADLINE_EXCEEDED),
    BelowThreshold: Wire(422, grpc.StatusCode.FAILED_PRECONDITION),
    Unauthenticated: Wire(401, grpc.StatusCode.UNAUTHENTICATED),
    PermissionDenied: Wire(403, grpc.StatusCode.PERMISSION_DENIED),
    RateLimited: Wire(429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    Overloaded: Wire(503, grpc.StatusCode.UNAVAILABLE),
    NotReady: Wire(503, grpc.StatusCode.UNAVAILABLE),
    DeadlineExceeded: Wire(504, grpc.StatusCode.DEADLINE_EXCEEDED),
    ModelNotFound: Wire(404, grpc.StatusCode.NOT_FOUND),
    # 409: the store's content, not the request, is at fault; the old version still serves
    ModelLoadFailed: Wire(409, grpc.StatusCode.FAILED_PRECONDITION),
    Internal: Wire(500, grpc.StatusCode.INTERNAL),
}


def wire_of(error: ServiceError) -> Wire:
    """The row for `error`'s class, or for its nearest listed base class."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[Internal]

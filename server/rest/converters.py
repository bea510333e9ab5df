"""Conversions between the core's types and REST answers: JSON bodies (absent fields left
out) and the error table's status, body and Retry-After header."""
from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel

from server.core import schemas, telemetry
from server.core.validation import describe
from server.errors import BelowThreshold, InvalidInput, ServiceError, UnparsableInput, wire_of


def to_json(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()


def json_response(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(model), status_code, headers, media_type="application/json")


def from_validation_error(exc: RequestValidationError) -> ServiceError:
    """FastAPI's complaint about a body as the core's error: unparsable JSON is its own row."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return UnparsableInput("the body is not valid JSON")
    return InvalidInput(describe(errors))


def error_body(error: ServiceError) -> BaseModel:
    if isinstance(error, BelowThreshold):
        if isinstance(error.answer, schemas.PredictBatchResponse):
            return schemas.LowConfidenceBatchBody(detail=error.detail, predictions=error.answer.predictions)
        return schemas.LowConfidenceBody(detail=error.detail, prediction=error.answer)
    return schemas.ErrorBody(detail=error.detail)


def error_response(error: ServiceError) -> Response:
    telemetry.mark(error.outcome)
    headers = {"retry-after": str(error.retry_after_s)} if error.retry_after_s is not None else None
    return json_response(error_body(error), wire_of(error).http_status, headers)


def stream_error_frame(error: ServiceError) -> str:
    """A WebSocket error message: the status REST would answer, the detail, and the answer
    when below the threshold. The socket stays open."""
    telemetry.mark(error.outcome)
    answer = error.answer if isinstance(error, BelowThreshold) else None
    frame = schemas.StreamError(status=wire_of(error).http_status, detail=error.detail, prediction=answer)
    return frame.model_dump_json(exclude_none=True)

"""Conversions between REST and the core's types: request bodies to the core's requests,
JSON bodies (absent fields left out) and the error table's status, body and Retry-After
header."""
from __future__ import annotations

import email.message
import functools
from typing import TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel

from server.core import schemas, telemetry
from server.core.auth import is_oip_path
from server.core.validation import describe, load_json, missing, not_json, parse
from server.errors import BelowThreshold, InvalidInput, ServiceError, UnsupportedMediaType, wire_of

M = TypeVar("M", bound=BaseModel)


def request_from_body(model: type[M], body: bytes, content_type: str | None) -> M:
    """The request in a REST body, by the body rules (BODY_RULES): a JSON object under a JSON
    content type. No body is invalid input (422), another content type 415, a body that is
    not JSON 400, an object the request type refuses 422."""
    if not body:
        raise missing()
    if not is_json(content_type):
        raise UnsupportedMediaType(f"the body must be JSON, with content-type application/json "
                                   f"(or application/*+json), not {content_type or 'none'}")
    return parse(model, load_json(body))


BODY_RULES = """**Bodies** are JSON (RFC 8259, UTF-8) under `content-type: application/json` or
`application/*+json`: another content type is 415, a body that is not JSON (NaN, Infinity,
another encoding, a byte order mark, an escaped lone surrogate) 400, no body or an object the
request type refuses 422.
Unknown fields are refused and types are strict (`"true"` is not a boolean). A text counts
its characters as sent, at most 10,000, and must hold a character that is not whitespace;
the model reads it without its surrounding whitespace."""


@functools.lru_cache(maxsize=64)
def is_json(content_type: str | None) -> bool:
    """application/json or application/*+json (parameters and case aside)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def to_json(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()


def json_response(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(model), status_code, headers, media_type="application/json")


def from_validation_error(exc: RequestValidationError) -> ServiceError:
    """FastAPI's complaint about a body as the core's error: unparsable JSON is its own row."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return not_json()
    return InvalidInput(describe(errors))


def http_error_response(
    status: int, detail: str, headers: dict[str, str] | None = None, *, path: str = ""
) -> Response:
    """An answer the framework's rules give before the core sees the request (routing's 404
    and 405, the body limits' 408 and 413): the status as it is, the error body of `path`."""
    if is_oip_path(path):  # the protocol's body, which tritonclient and KServe's client read
        return Response(orjson.dumps({"error": detail}), status, headers, media_type="application/json")
    return json_response(schemas.ErrorBody(detail=detail), status, headers)


def error_body(error: ServiceError) -> BaseModel:
    if isinstance(error, BelowThreshold):
        if isinstance(error.answer, schemas.PredictBatchResponse):
            return schemas.LowConfidenceBatchBody(detail=error.detail, predictions=error.answer.predictions)
        return schemas.LowConfidenceBody(detail=error.detail, prediction=error.answer)
    return schemas.ErrorBody(detail=error.detail)


def error_parts(error: ServiceError, path: str = "") -> tuple[int, dict[str, str] | None, bytes]:
    """The error table's answer to a request for `path`: its status, Retry-After, and the
    JSON error body of that path (the Open Inference Protocol's under /v2)."""
    headers = {"retry-after": str(error.retry_after_s)} if error.retry_after_s is not None else None
    if isinstance(error, BelowThreshold):
        body = to_json(error_body(error))
    else:  # ErrorBody's JSON, or the protocol's body under /v2, written directly (the fast no's cost)
        body = orjson.dumps({"error" if is_oip_path(path) else "detail": error.detail})
    return wire_of(error).http_status, headers, body


def error_response(error: ServiceError, path: str = "") -> Response:
    """The answer of `error_parts`, as the current request's outcome."""
    telemetry.mark(error.outcome)
    status, headers, body = error_parts(error, path)
    return Response(body, status, headers, media_type="application/json")


def stream_error_frame(error: ServiceError) -> str:
    """A WebSocket error message: the status REST would answer, the detail, and the answer
    when below the threshold. The socket stays open."""
    telemetry.mark(error.outcome)
    answer = error.answer if isinstance(error, BelowThreshold) else None
    frame = schemas.StreamError(status=wire_of(error).http_status, detail=error.detail, prediction=answer)
    return frame.model_dump_json(exclude_none=True)

"""Turns input into the core's request types, and pydantic's complaints into one readable
detail, the same for every door."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from server.errors import InvalidInput, UnparsableInput

M = TypeVar("M", bound=BaseModel)


def describe(errors: Iterable[Mapping[str, Any]]) -> str:
    """'texts.3: String should have at least 1 character; return_cot: Input should be ...'"""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts) or "invalid request"


def parse(model: type[M], data: Any, *, from_attributes: bool = False) -> M:
    """`from_attributes`: validate as FastAPI validates a body (a JSON array or string is
    then "not a valid dictionary or object to extract fields from")."""
    try:
        return model.model_validate(data, from_attributes=from_attributes)
    except ValidationError as exc:
        raise InvalidInput(describe(exc.errors(include_url=False))) from None


def missing() -> InvalidInput:
    """The error for a request with no body at all."""
    return InvalidInput("the request has no body: send a JSON object")


def not_json() -> UnparsableInput:
    """A body (or message) that is not JSON, in one wording for every door and reader."""
    return UnparsableInput("the body is not valid JSON")


def load_json(raw: str | bytes) -> Any:
    """JSON as RFC 8259 defines it, in UTF-8 (orjson's reader): NaN and Infinity, a byte order
    mark, UTF-16 and lone surrogates are not JSON. Raises UnparsableInput for anything else."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise not_json() from None


def parse_json(model: type[M], raw: str | bytes) -> M:
    """A JSON message (a WebSocket frame) read as a REST body is: the same JSON reader."""
    return parse(model, load_json(raw))

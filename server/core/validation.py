"""Turns input into the core's request types, and pydantic's complaints into one readable
detail, the same for every door."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails

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
    """The error for a request with no body at all, in pydantic's words ("Field required")."""
    details: list[InitErrorDetails] = [{"type": "missing", "loc": (), "input": None}]
    return InvalidInput(describe(ValidationError.from_exception_data("body", details).errors()))


def not_json() -> UnparsableInput:
    """A body (or message) that is not JSON, in one wording for every door and reader."""
    return UnparsableInput("the body is not valid JSON")


def load_json(raw: str | bytes) -> Any:
    """JSON as Python's json module reads it (FastAPI's reader, which the REST door answered
    by: NaN and Infinity, a byte order mark, UTF-16 and UTF-32, lone surrogates), at orjson's
    speed for every body orjson reads, which json reads alike (but for integers past 64
    bits, which orjson reads as floats: the request types have no integer field, and they
    refuse or bound either alike). Raises UnparsableInput for anything json cannot read."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
        raise not_json() from None


def parse_json(model: type[M], raw: str | bytes) -> M:
    """A JSON message (a WebSocket frame) read as a REST body is: the same JSON reader."""
    return parse(model, load_json(raw))

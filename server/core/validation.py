"""Turns input into the core's request types, and pydantic's complaints into one readable
detail, the same for every door."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from server.errors import InvalidInput, UnparsableInput

M = TypeVar("M", bound=BaseModel)


def describe(errors: Iterable[dict[str, Any]]) -> str:
    """'texts.3: String should have at least 1 character; return_cot: Input should be ...'"""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts) or "invalid request"


def parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(describe(exc.errors(include_url=False))) from None


def parse_json(model: type[M], raw: str | bytes) -> M:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UnparsableInput(f"the body is not valid JSON: {exc}") from None
    return parse(model, data)

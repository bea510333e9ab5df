"""Shared by the client scripts (triton_check.py, kserve_check.py), which run in their own
virtual environments: the command line, and a report of what each step got, printed as one
JSON object. Standard library and numpy only; nothing from the project is imported here."""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np


def parse_args(doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--rest", required=True, help="HOST:PORT of bet's REST door")
    parser.add_argument("--grpc", required=True, help="HOST:PORT of bet's gRPC door")
    parser.add_argument("--texts-file", required=True, help="a JSON list of 3 texts")
    parser.add_argument("--model", default="bet", help="the model's name on the protocol")
    args = parser.parse_args()
    with open(args.texts_file, encoding="utf-8") as f:
        args.texts = json.load(f)
    assert isinstance(args.texts, list) and all(isinstance(t, str) for t in args.texts)
    return args


def plain(value: Any) -> Any:
    """numpy arrays and scalars, bytes and protobuf repeated fields as JSON values; bytes are
    decoded as UTF-8 (an undecodable byte shows as an escape, so the test sees it)."""
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__.startswith("Repeated"):
        return [plain(v) for v in value]
    return value


def tensor(array: Any, datatype: str, shape: Any, **extra: Any) -> dict[str, Any]:
    """One output as the client gave it: the datatype and shape the server declared, the
    numpy dtype and shape the client's as_numpy made, and the values."""
    out: dict[str, Any] = {"datatype": datatype, "shape": [int(d) for d in shape], **extra}
    if array is None:
        out.update(numpy_dtype=None, numpy_shape=None, data=None)
    else:
        array = np.asarray(array)
        out.update(numpy_dtype=str(array.dtype), numpy_shape=list(array.shape), data=plain(array))
    return out


class Report:
    """Each step's outcome under its name: a value, or {"error": ...} if the step raised (the
    rest of the steps still run, so one failure does not hide the others)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def step(self, path: str, fn: Callable[[], Any]) -> Any:
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - the report is what the test reads
            value = {"error": error(exc), "traceback": traceback.format_exc(limit=4)}
        node = self.data
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
        return value

    def print(self) -> None:
        json.dump(self.data, sys.stdout, default=str)
        sys.stdout.write("\n")
        sys.stdout.flush()


def error(exc: BaseException) -> dict[str, Any]:
    """An exception as the test reads it: its type, message and, where the client has one, the
    status (tritonclient's InferenceServerException, grpc.RpcError, httpx.HTTPStatusError)."""
    out: dict[str, Any] = {"type": type(exc).__name__, "str": str(exc)}
    for attr in ("message", "status", "debug_details"):  # tritonclient
        fn = getattr(exc, attr, None)
        if callable(fn):
            try:
                out[attr] = plain(fn())
            except Exception:  # noqa: BLE001
                pass
    code = getattr(exc, "code", None)  # grpc.RpcError
    if callable(code):
        try:
            out["code"] = code().name
            out["details"] = exc.details()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            pass
    response = getattr(exc, "response", None)  # httpx.HTTPStatusError
    if response is not None and hasattr(response, "status_code"):
        out["status_code"] = response.status_code
        out["body"] = response.text[:2000]
    return out

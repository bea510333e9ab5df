"""Structured logs: one JSON object per line on stderr, with the current request id."""
from __future__ import annotations

import logging
import sys

import orjson

from server.core import telemetry
from server.workers import worker_index


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # with several worker processes (server/workers.py), which one wrote the line
        index = worker_index()
        self._worker = {"worker": index} if index is not None else {}
        self._second, self._stamp = -1, ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime a second, not one a line
            self._second, self._stamp = second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        entry = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self._worker,
        }
        ctx = telemetry.current.get()
        if ctx is not None:
            entry["request_id"] = ctx.request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:  # stays in the server's log; never sent to a caller
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

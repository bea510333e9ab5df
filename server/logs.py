"""Structured logs: one JSON object per line on stderr, with the current request id."""
from __future__ import annotations

import logging
import sys
import threading
import time

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


class BufferedStderr(logging.StreamHandler):
    """Log lines to stderr through a block buffer, written at least every `flush_s` (and at
    once for warnings and errors, and at exit): a write system call per request line cost
    a tenth of the event loop's time under load (bench/README.md)."""

    def __init__(self, flush_s: float = 0.2) -> None:
        super().__init__(open(sys.stderr.fileno(), "w", buffering=1 << 16, closefd=False))
        self._flush_s = flush_s
        threading.Thread(target=self._flush_often, name="bet-log-flush", daemon=True).start()

    def flush(self) -> None:  # logging calls it after each record: only the timer and errors do
        pass

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()

    def flush_now(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.stream.flush()

    def _flush_often(self) -> None:
        while True:
            time.sleep(self._flush_s)
            self.flush_now()

    def close(self) -> None:  # logging.shutdown, at exit
        self.flush_now()
        super().close()


def configure_logging(level: str) -> None:
    handler = BufferedStderr()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers:  # a forked worker's copy of its parent's: write what it holds
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

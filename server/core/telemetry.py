"""Per-request bookkeeping shared by both doors: the request id, one JSON log line, the
request metrics and (when tracing is on) a span, all from one context manager."""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from server.core import tracing
from server.core.metrics import Metrics

log = logging.getLogger("bet.request")

REQUEST_ID_HEADER = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # what we echo back and log as given


@dataclass
class RequestContext:
    request_id: str
    protocol: str  # "rest" or "grpc"
    method: str
    outcome: str = "ok"
    start: float = field(default_factory=time.perf_counter)
    model_version: str | None = None  # the version that answered, once one has taken it


current: ContextVar[RequestContext | None] = ContextVar("bet_request", default=None)


def request_id_from(given: str | None) -> str:
    """The caller's id when it is a sane token, else a fresh one."""
    if given and _SAFE_ID.match(given):
        return given
    # 32 hex digits as uuid4().hex gave, without its os.urandom system call per request (a
    # request id names a request; it guards nothing)
    return f"{random.getrandbits(128):032x}"


def mark(outcome: str) -> None:
    """Records the outcome of the current request (an error's `outcome` label)."""
    ctx = current.get()
    if ctx is not None:
        ctx.outcome = outcome


def note_model_version(version: str) -> None:
    """Records which model version answers the current request (for its log line and the
    per-version metrics)."""
    ctx = current.get()
    if ctx is not None:
        ctx.model_version = version


@contextmanager
def track(
    metrics: Metrics, protocol: str, method: str, request_id: str,
    carrier: Mapping[str, str] | None = None,
) -> Iterator[RequestContext]:
    """One request: its context, then one log line, its metrics and (when tracing is on) its
    span; `carrier` is the caller's headers or metadata (for a W3C `traceparent`)."""
    ctx = RequestContext(request_id, protocol, method)
    token = current.set(ctx)
    with metrics.tracing.span(f"bet {protocol} {method}", {
        "bet.protocol": protocol, "bet.method": method, "bet.request_id": request_id,
    }, carrier) as span:
        try:
            yield ctx
        except BaseException as exc:
            if ctx.outcome == "ok":  # not marked by an error translator: cancelled or a fault
                ctx.outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "internal"
            raise
        finally:
            tracing.finish(span, {"bet.outcome": ctx.outcome, "bet.model_version": ctx.model_version},
                           failed=ctx.outcome == "internal")
            _record(metrics, ctx, token)


def _record(metrics: Metrics, ctx: RequestContext, token: Token) -> None:
    """The request's log line and metrics; then leaves the request's context."""
    seconds = time.perf_counter() - ctx.start
    metrics.observe_request(ctx.protocol, ctx.method, ctx.outcome, seconds, ctx.model_version)
    fields = {"protocol": ctx.protocol, "method": ctx.method, "outcome": ctx.outcome,
              "duration_ms": round(seconds * 1000, 3)}
    if ctx.model_version is not None:
        fields["model_version"] = ctx.model_version
    log.info("request", extra={"fields": fields})
    try:
        current.reset(token)
    except ValueError:
        # A streaming call's handler may end in another task than it began in (grpc.aio),
        # whose context did not make the token: there the request's context is left as None.
        current.set(None)

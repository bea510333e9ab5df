"""REST transports (httpx for calls, websockets for WS /v1/stream), sync and asyncio."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import websockets
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect

from bet_client import errors
from bet_client._connection import Connection
from bet_client._ops import Op
from bet_client.gen.models import PredictResponse
from bet_client.retry import Deadline

T = TypeVar("T")
STREAM_PATH = "/v1/stream"


@contextmanager
def _translated(conn: Connection) -> Iterator[None]:
    """Failures to talk at all, as the typed errors: a timeout, or no server (retryable)."""
    try:
        yield
    except (httpx.TimeoutException, TimeoutError):
        raise errors.DeadlineExceededError("no answer within the call's timeout") from None
    except websockets.InvalidStatus as exc:
        raise _from_response(exc.response.status_code, exc.response.body, exc.response.headers) from None
    except websockets.ConnectionClosed as exc:
        raise errors.UnavailableError(f"the stream to {conn.base_url()} closed: {exc}") from None
    except (httpx.TransportError, OSError) as exc:
        raise errors.UnavailableError(f"cannot reach {conn.base_url()}: {exc}") from None


def _from_response(status: int, content: bytes | bytearray | None, headers: Any) -> errors.BetError:
    try:
        body = json.loads(content or b"null")
    except ValueError:
        body = None
    return errors.from_http(status, body, headers.get("retry-after"))


def _answer(op: Op[T], response: httpx.Response) -> T:
    if response.status_code in op.http_ok:
        return op.from_json(response.status_code, response.json())
    raise _from_response(response.status_code, response.content, response.headers)


def _frame(raw: str | bytes) -> PredictResponse:
    """One message of the stream: an answer, or an error frame ({"status": ..., "detail": ...})."""
    frame = json.loads(raw)
    if "status" in frame and "detail" in frame:
        raise errors.from_http(frame["status"], frame)
    return PredictResponse.model_validate(frame)


def _ws_options(conn: Connection, deadline: Deadline) -> dict[str, Any]:
    return {"additional_headers": conn.headers(), "ssl": conn.ssl_context(),
            "open_timeout": deadline.remaining()}


class RestTransport:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._http = httpx.Client(base_url=conn.base_url(), headers=conn.headers(),
                                  verify=conn.ssl_context() or True)

    def unary(self, op: Op[T], timeout: float) -> T:
        with _translated(self._conn):
            response = self._http.request(op.http_method, op.path, json=op.body, timeout=timeout)
        return _answer(op, response)

    def stream(self, requests: Iterable[dict[str, Any]], deadline: Deadline) -> Iterator[PredictResponse]:
        """One request in, one answer out, in order; the first error ends the stream."""
        with _translated(self._conn), connect(self._conn.ws_url(STREAM_PATH), **_ws_options(self._conn, deadline)) as ws:
            for request in requests:
                ws.send(json.dumps(request))
                yield _frame(ws.recv(timeout=deadline.remaining()))

    def close(self) -> None:
        self._http.close()


class AsyncRestTransport:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._http = httpx.AsyncClient(base_url=conn.base_url(), headers=conn.headers(),
                                       verify=conn.ssl_context() or True)

    async def unary(self, op: Op[T], timeout: float) -> T:
        with _translated(self._conn):
            response = await self._http.request(op.http_method, op.path, json=op.body, timeout=timeout)
        return _answer(op, response)

    async def stream(self, requests: AsyncIterable[dict[str, Any]], deadline: Deadline) -> AsyncIterator[PredictResponse]:
        with _translated(self._conn):
            async with aconnect(self._conn.ws_url(STREAM_PATH), **_ws_options(self._conn, deadline)) as ws:
                async for request in requests:
                    await ws.send(json.dumps(request))
                    async with asyncio.timeout(deadline.remaining()):
                        raw = await ws.recv()
                    yield _frame(raw)

    async def close(self) -> None:
        await self._http.aclose()

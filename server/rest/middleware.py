"""ASGI middleware around the whole REST app: request id in and out, one tracked request
(log line and metrics) per HTTP request or WebSocket, and the request body size limit."""
from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core import schemas, telemetry, tracing
from server.core.metrics import Metrics


class BodyTooLarge(HTTPException):
    """Raised while the body is read; FastAPI passes HTTPExceptions through to our handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(422, f"the request body exceeds {limit} bytes")


class RequestTracking:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, paths: frozenset[str]) -> None:
        self._app = app
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._paths = paths  # known paths label metrics; others count as "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        request_id = telemetry.request_id_from(
            headers.get(telemetry.REQUEST_ID_HEADER.encode(), b"").decode("latin-1"))
        path = scope["path"] if scope["path"] in self._paths else "other"
        method = f"{scope.get('method', 'WS')} {path}"
        declared = headers.get(b"content-length", b"0")
        too_large = declared.isdigit() and int(declared) > self._max_body
        id_header = (telemetry.REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], id_header]
            if message["type"] == "http.response.start" and message["status"] >= 400:
                ctx = telemetry.current.get()
                if ctx is not None and ctx.outcome == "ok":
                    ctx.outcome = f"http_{message['status']}"
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._max_body:
                raise BodyTooLarge(self._max_body)
            return message

        with telemetry.track(self._metrics, "rest", method, request_id, tracing.carrier(headers)):
            if too_large:  # refused before reading a byte of it
                telemetry.mark("invalid_input")
                await self._refuse(send, request_id)
                return
            await self._app(scope, receive_limited, send_with_id)

    async def _refuse(self, send: Send, request_id: str) -> None:
        body = schemas.ErrorBody(detail=f"the request body exceeds {self._max_body} bytes")
        payload: Any = body.model_dump_json().encode()
        await send({"type": "http.response.start", "status": 422, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (telemetry.REQUEST_ID_HEADER.encode(), request_id.encode())]})
        await send({"type": "http.response.body", "body": payload})

"""ASGI middleware around the whole REST app: request id in and out, one tracked request
(log line and metrics) per HTTP request or WebSocket, admission by the core's Guard
(credentials, scope, rate limit) and, for predictions, by the core's load (a refusal before
the body is read or the framework routes it), and the body's size and time limits."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core import auth, telemetry, tracing
from server.core.metrics import Metrics
from server.errors import PayloadTooLarge, ServiceError, SlowRequest, wire_of
from server.rest import converters, oip


class BodyRefused(HTTPException):
    """Raised while the body is read (FastAPI passes HTTPExceptions through to the app's
    handler, any other error would become a 400), with the status of the error's row."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(wire_of(error).http_status, error.detail)


class RequestTracking:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, paths: frozenset[str],
        guard: auth.Guard, body_timeout_s: float | None = None,
        admit: Callable[[], None] | None = None, predict_paths: frozenset[str] = frozenset(),
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._paths = paths  # known paths label metrics; others count as "other"
        self._guard = guard
        self._body_timeout_s = body_timeout_s
        self._admit_load = admit  # raises Overloaded when a prediction would be refused now
        self._predict_paths = predict_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())

        def header(name: str) -> str | None:
            value = headers.get(name.encode())
            return value.decode("latin-1") if value is not None else None

        request_id = telemetry.request_id_from(header(telemetry.REQUEST_ID_HEADER))
        path = scope["path"] if scope["path"] in self._paths else (oip.template(scope["path"]) or "other")
        method = f"{scope.get('method', 'WS')} {path}"
        id_header = (telemetry.REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.http.response.start"):
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], id_header]
            if message["type"] == "http.response.start" and message["status"] >= 400:
                ctx = telemetry.current.get()
                if ctx is not None and ctx.outcome == "ok":
                    ctx.outcome = f"http_{message['status']}"
            await send(message)

        received = 0
        body_done = False
        timeout = self._body_timeout_s
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout

        async def receive_limited() -> Message:
            """The body within its size and time limits; after it, messages as they come."""
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyRefused(SlowRequest(f"the request body did not arrive within {timeout:g} s")) from None
            received += len(message.get("body", b""))
            if received > self._max_body:
                raise BodyRefused(PayloadTooLarge(f"the request body exceeds {self._max_body} bytes"))
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        with telemetry.track(self._metrics, "rest", method, request_id, tracing.carrier(headers)):
            try:
                self._admit(scope, header)
                if self._admit_load is not None and (scope["path"] in self._predict_paths or path == oip.INFER):
                    self._admit_load()
                declared = header("content-length") or "0"
                if declared.isdigit() and int(declared) > self._max_body:  # before reading a byte
                    raise PayloadTooLarge(f"the request body exceeds {self._max_body} bytes")
            except ServiceError as error:
                await converters.error_response(error, scope["path"])(scope, receive, send_with_id)
                return
            if scope["type"] == "websocket":  # no body; streams have their own idle limit
                await self._app(scope, receive, send_with_id)
            else:
                await self._app(scope, receive_limited, send_with_id)

    def _admit(self, scope: Scope, header: Callable[[str], str | None]) -> None:
        needed = auth.rest_scope(scope["path"], metrics_open=self._guard.metrics_open)
        if needed is None:
            return
        client = scope.get("client")
        credentials = auth.Credentials(
            authorization=header(auth.AUTHORIZATION), api_key=header(auth.API_KEY),
            client=client[0] if client else "",
        )
        # A WebSocket is charged per message (by the core's stream), not for opening.
        self._guard.admit(credentials, needed, charge=scope["type"] == "http")

"""Builds the FastAPI app around a core service: routes, error handlers, middleware."""
from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.core import auth, oip_schema
from server.core.auth import Guard
from server.core.metrics import Metrics
from server.core.overload import Refusals
from server.core.reload import Reloader
from server.core.service import InferenceService
from server.core.validation import not_json
from server.errors import Internal, ServiceError
from server.rest import admin, converters, fast_path, oip
from server.rest.fast_no import FastNo
from server.rest.fast_path import FastPath, PredictRoutes
from server.rest.middleware import RequestTracking
from server.rest.routes import router

log = logging.getLogger(__name__)

# Swagger UI's and ReDoc's scripts and styles, from the installed fastapi-offline: the docs
# pages load nothing from any other host. Open without credentials (auth.OPEN_PREFIXES).
DOCS_ASSETS = "/docs/assets"
DEMO_PAGE = Path(__file__).parent / "static" / "demo.html"
# The docs pages may load and call only this server: the bundled ReDoc still asks
# cdn.redoc.ly for its attribution logo, which this policy stops in the browser.
DOCS_PAGES = frozenset({"/docs", "/redoc"})
DOCS_POLICY = [(b"content-security-policy",
                b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
                b"base-uri 'none'; frame-ancestors 'none'")]

DESCRIPTION = """Text classification with calibrated probabilities and uncertainty split into
aleatoric and epistemic parts. The same answers are served over gRPC (`bet.v1.Inference`).

**Streaming:** `WS /v1/stream` takes one JSON `PredictRequest` per message and answers each
with a `PredictResponse`, in order. An error is answered with a `StreamError`
(`{"status": 422, "detail": "..."}`, plus `prediction` below the threshold) and the socket
stays open.

**Errors:** every error body is `{"detail": "..."}`; 400 unparsable JSON, 422 invalid input
or below the threshold (with the prediction), 503 overloaded (with `Retry-After`) or not
ready, 504 waited past the request timeout; 408 a body too slow, 413 a body too large.

**Security:** when authentication is on, every call but health, docs and open metrics needs
`Authorization: Bearer <JWT>` or `x-api-key: <key>` (401 without, 403 without the scope:
`predict`, or `admin` for administration), and a caller over its rate limit gets 429 with
`Retry-After`."""


def create_rest_app(
    service: InferenceService, metrics: Metrics, *, max_request_bytes: int,
    guard: Guard | None = None, body_timeout_s: float | None = None,
    reloader: Reloader | None = None, oip_model_name: str = "bet", demo_page: bool = True,
    cors_origins: Sequence[str] = (), refusals: Refusals | None = None,
) -> FastPath:
    """The app to serve: the two prediction routes in plain ASGI, the rest (and the whole
    OpenAPI document) FastAPI, which is the result's `api`; the demo page at `/` unless
    `demo_page` is false; CORS for `cors_origins` around all of it. With `refusals`, the
    result's `fast_no` is the HTTP protocol's (server/rest/protocol.py)."""
    # FastAPI's own OpenTelemetry is off: server/core/tracing.py traces both doors alike,
    # and FastAPI's would look up the global providers on every request. No validator badge:
    # Swagger UI would send the document to validator.swagger.io.
    app = FastAPIOffline(title="bet", version=service.version, description=DESCRIPTION, static_url=DOCS_ASSETS,
                         swagger_ui_parameters={"validatorUrl": None},
                         telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.service = service
    app.state.metrics = metrics
    app.state.reloader = reloader
    app.state.oip_model_name = oip_model_name
    app.include_router(router)
    app.include_router(admin.router)
    app.include_router(oip.router)
    if demo_page:
        _serve_demo_page(app)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return converters.error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        return converters.error_response(converters.from_validation_error(exc), request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # routing's own answers (404, 405) and the body limits (408, 413) keep their status;
        # a body FastAPI could not read at all (not UTF-8) is unparsable, as bad JSON is
        if exc.status_code == 400:
            return converters.error_response(not_json(), request.url.path)
        return converters.http_error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None),
                                              path=request.url.path)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in a REST call")  # the trace stays in the log
        return converters.error_response(Internal("internal error"), request.url.path)

    app.add_middleware(DocsPolicy)
    guard = guard or Guard.open(metrics.registry)
    _document_refusals(app, guard)
    paths = frozenset(p for r in (*app.routes, *router.routes) if (p := getattr(r, "path", None))) | set(
        fast_path.ROUTES)
    tracking: dict[str, Any] = {
        "metrics": metrics, "max_body_bytes": max_request_bytes, "paths": paths, "guard": guard,
        "body_timeout_s": body_timeout_s, "admit": lambda: service.admit(),
        "predict_paths": frozenset(fast_path.ROUTES),
    }
    app.add_middleware(RequestTracking, **tracking)
    served = FastPath(app, RequestTracking(PredictRoutes(service, oip_model_name), **tracking),
                      cors_origins=cors_origins)
    if refusals is not None:
        served.fast_no = FastNo(refusals, credentials_needed=guard.authenticator.enabled, cors=bool(cors_origins))
    return served


class DocsPolicy:
    """Adds DOCS_POLICY to the answers of the docs pages (FastAPIOffline's routes)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in DOCS_PAGES:
            await self._app(scope, receive, send)
            return

        async def with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *DOCS_POLICY]
            await send(message)

        await self._app(scope, receive, with_policy)


def _serve_demo_page(app: FastAPI) -> None:
    """GET / answers the one-file demo page; its inline script and style are allowed by
    their hashes, and it may call only this origin."""
    html = DEMO_PAGE.read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                        for body in re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S))

    headers = {
        "content-security-policy": f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
                                   "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                   "frame-ancestors 'none'",
        "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-cache",
    }

    @app.get("/", include_in_schema=False)
    async def demo() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)


_GUARD_REFUSALS = {
    "401": "Missing or bad credentials (authentication on).",
    "403": "The credentials lack the scope this call needs.",
    "429": "Over the caller's rate limit; Retry-After says when to come back.",
}
_BODY_REFUSALS = {
    "400": "The body is not JSON.",
    "408": "The body did not arrive in time.",
    "413": "The body is over the size limit.",
}


def _document_refusals(app: FastAPI, guard: Guard) -> None:
    """Adds to each operation of the OpenAPI document the answers that can come before it
    runs: the Guard's (by the same table that enforces them) and, with a body, the body
    limits'."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # FastAPI's: keeps the document as app.openapi_schema
        fast_path.document(document)  # the prediction routes, which are not FastAPI's
        for path, operations in document["paths"].items():
            body = oip_schema.ERROR if auth.is_oip_path(path) else "ErrorBody"  # as converters answers
            error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}
            for operation in operations.values():
                refusals = dict(_GUARD_REFUSALS) if auth.rest_scope(
                    path, metrics_open=guard.metrics_open) is not None else {}
                if "requestBody" in operation:
                    refusals |= _BODY_REFUSALS
                for status, description in refusals.items():
                    operation["responses"].setdefault(status, {"description": description, "content": error})
        return document

    app.openapi = openapi  # type: ignore[method-assign]

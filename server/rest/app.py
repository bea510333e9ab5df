"""Builds the FastAPI app around a core service: routes, error handlers, middleware."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from server.core import schemas
from server.core.auth import Guard
from server.core.metrics import Metrics
from server.core.reload import Reloader
from server.core.service import InferenceService
from server.errors import Internal, InvalidInput, ServiceError
from server.rest import admin, converters
from server.rest.middleware import RequestTracking
from server.rest.routes import router

log = logging.getLogger(__name__)

DESCRIPTION = """Text classification with calibrated probabilities and uncertainty split into
aleatoric and epistemic parts. The same answers are served over gRPC (`bet.v1.Inference`).

**Streaming:** `WS /v1/stream` takes one JSON `PredictRequest` per message and answers each
with a `PredictResponse`, in order. An error is answered with a `StreamError`
(`{"status": 422, "detail": "..."}`, plus `prediction` below the threshold) and the socket
stays open.

**Errors:** every error body is `{"detail": "..."}`; 400 unparsable JSON, 422 invalid input
or below the threshold (with the prediction), 503 overloaded (with `Retry-After`) or not
ready, 504 waited past the request timeout."""


def create_rest_app(
    service: InferenceService, metrics: Metrics, *, max_request_bytes: int,
    guard: Guard | None = None, body_timeout_s: float | None = None,
    reloader: Reloader | None = None,
) -> FastAPI:
    app = FastAPI(title="bet", version=service.version, description=DESCRIPTION)
    app.state.service = service
    app.state.metrics = metrics
    app.state.reloader = reloader
    app.include_router(router)
    app.include_router(admin.router)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return converters.error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> Response:
        return converters.error_response(converters.from_validation_error(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # routing's own answers (404, 405) and the body limit (422) keep their status
        if exc.status_code == 422:
            return converters.error_response(InvalidInput(str(exc.detail)))
        return converters.json_response(
            schemas.ErrorBody(detail=str(exc.detail)), exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in a REST call")  # the trace stays in the log
        return converters.error_response(Internal("internal error"))

    paths = frozenset(p for r in (*app.routes, *router.routes) if (p := getattr(r, "path", None)))
    app.add_middleware(RequestTracking, metrics=metrics, max_body_bytes=max_request_bytes, paths=paths,
                       guard=guard or Guard.open(metrics.registry), body_timeout_s=body_timeout_s)
    return app

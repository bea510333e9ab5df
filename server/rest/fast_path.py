"""The prediction routes in plain ASGI: `POST /v1/predict`, `POST /v1/predict/batch` and the
Open Inference Protocol's `POST /v2/models/{model}[/versions/{version}]/infer`. A request
skips FastAPI's middleware, routing and dependency solving, which cost more CPU per request
than the model (bench/README.md, "Hot path at 512 connections"). Each route is implemented
here once; FastAPI serves everything else, and the OpenAPI document states these routes from
the same table (`document`), with the body rules they enforce (converters.BODY_RULES).
RequestTracking (request id, log line, metrics, span, Guard, admission, body limits) wraps
this app as it wraps FastAPI's."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from server.core import oip_schema, schemas, telemetry
from server.core.service import InferenceService
from server.core.validation import not_json
from server.errors import Internal, ServiceError
from server.rest import converters
from server.rest import oip as rest_oip
from server.rest.middleware import BodyRefused

if TYPE_CHECKING:
    from server.rest.fast_no import FastNo

log = logging.getLogger("server.rest.app")  # the logger of FastAPI's handler for the same fault

PREDICT = "/v1/predict"
PREDICT_BATCH = "/v1/predict/batch"


def _as_is(response: Response) -> Response:
    return response


async def answer(
    receive: Receive, work: Awaitable[Any], respond: Callable[[Any], Response] = converters.json_response,
) -> Response:
    """Runs `work` in this task and answers `respond(result)` (JSON); if the client goes away
    first, the work is cancelled (so its texts are dropped from the queue) and the answer is
    499, which nobody reads. Call it once the body is read: the next message is the
    disconnect (or, from uvicorn, one when the response is complete). One watcher task per
    request, no task for the work."""
    me = asyncio.current_task()
    assert me is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        me.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return respond(await work)
    except asyncio.CancelledError:
        if not gone:  # not the watcher's: the server's (shutdown), passed on
            raise
        me.uncancel()
        telemetry.mark("cancelled")
        return Response(status_code=499)
    finally:
        watcher.cancel()


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


async def read_body(receive: Receive) -> bytes:
    """The whole body, as Starlette's Request.body() reads it (the limits are in `receive`:
    RequestTracking raises BodyRefused past them)."""
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        return message.get("body", b"")  # the common case: one message
    chunks = []
    while True:
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


@dataclass(frozen=True)
class Route:
    """A native prediction route: its request and answer types, the service's method, and
    what the document says of it."""

    request: type[BaseModel]
    response: type[BaseModel]
    below_threshold: type[BaseModel]  # the 422 body that carries the answers
    method: str
    summary: str
    operation_id: str


ROUTES: dict[str, Route] = {
    PREDICT: Route(schemas.PredictRequest, schemas.PredictResponse, schemas.LowConfidenceBody, "predict",
                   "One prediction", "predict_v1_predict_post"),
    PREDICT_BATCH: Route(schemas.PredictBatchRequest, schemas.PredictBatchResponse,
                         schemas.LowConfidenceBatchBody, "predict_batch", "Up to 256 predictions, in order",
                         "predict_batch_v1_predict_batch_post"),
}


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:  # the first, as Starlette's headers.get gives it
        if name == wanted:
            return value.decode("latin-1")
    return None


class PredictRoutes:
    """The routes' endpoint: read, validate, delegate to the core, answer."""

    def __init__(self, service: InferenceService, oip_model_name: str = "bet") -> None:
        self._service = service
        self._oip_model_name = oip_model_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        route = ROUTES.get(path)
        try:
            body = await read_body(receive)
            if route is not None:
                request = converters.request_from_body(route.request, body, _header(scope, b"content-type"))
                predict: Callable[[Any], Awaitable[BaseModel]] = getattr(self._service, route.method)
                response = await answer(receive, predict(request))
            else:
                response = await answer(receive, rest_oip.infer(
                    self._service, self._oip_model_name, scope["path"], body,
                    _header(scope, rest_oip.HEADER_LENGTH.encode())), _as_is)
        except ServiceError as error:
            response = converters.error_response(error, path)
        except BodyRefused as refused:  # over the body's size or time limit
            response = converters.http_error_response(refused.status_code, str(refused.detail), path=path)
        except ClientGone:  # nobody reads this answer
            response = converters.error_response(not_json(), path)
        except Exception:
            log.exception("unhandled error in a REST call")  # the trace stays in the log
            response = converters.error_response(Internal("internal error"), path)
        await response(scope, receive, send)


def is_hot(path: str) -> bool:
    return path in ROUTES or rest_oip.INFER_PATH.fullmatch(path) is not None


# What a page on an allowed origin may send and read (BET_CORS_ORIGINS): the credentials,
# a request id, the OIP binary extension's header; the request id and the advice to wait.
CORS_METHODS = ("GET", "POST")
CORS_REQUEST_HEADERS = ("authorization", "x-api-key", telemetry.REQUEST_ID_HEADER, rest_oip.HEADER_LENGTH)
CORS_EXPOSED_HEADERS = (telemetry.REQUEST_ID_HEADER, "retry-after")


class FastPath:
    """The REST app as served: the prediction routes go to `hot` (PredictRoutes inside its
    own RequestTracking), everything else, lifespan included, to the FastAPI app `api`.
    With `cors_origins`, one CORS layer (Starlette's) wraps both, outside either
    RequestTracking: a preflight is answered before credentials are asked for, and it is not
    counted as a request of the path it asks about."""

    fast_no: FastNo | None = None  # the HTTP protocol's refusals (server/rest/fast_no.py)

    def __init__(self, api: FastAPI, hot: ASGIApp, *, cors_origins: Sequence[str] = ()) -> None:
        self.api = api
        self._hot = hot
        self._app: ASGIApp = self._route
        if cors_origins:
            self._app = CORSMiddleware(
                self._route, allow_origins=list(cors_origins), allow_methods=CORS_METHODS,
                allow_headers=CORS_REQUEST_HEADERS, expose_headers=CORS_EXPOSED_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_hot(scope["path"]):
            if scope["method"] == "POST":
                await self._hot(scope, receive, send)
            else:
                await _METHOD_NOT_ALLOWED(scope, receive, send)
        else:
            await self.api(scope, receive, send)


_METHOD_NOT_ALLOWED = converters.http_error_response(405, "Method Not Allowed", {"allow": "POST"})

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_ANSWERS = {
    "400": "The body is not JSON.",
    "415": "The body's content type is not JSON.",
    "503": "Overloaded (with Retry-After) or not ready.",
    "504": "Waited past the request timeout.",
}


def document(openapi: dict[str, Any]) -> None:
    """Adds the prediction routes to FastAPI's OpenAPI document, from ROUTES (and the OIP
    infer route from its own description), with the schemas they use (the protocol's: all
    of its bodies, which its FastAPI routes refer to as well)."""
    models = {m for r in ROUTES.values() for m in (r.request, r.response, r.below_threshold)} | {schemas.ErrorBody}
    _, top = models_json_schema([(m, "validation" if m in {r.request for r in ROUTES.values()} else "serialization")
                                 for m in sorted(models, key=lambda m: m.__name__)],
                                ref_template="#/components/schemas/{model}")
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in (top.get("$defs", {}) | oip_schema.components()).items():
        components.setdefault(name, schema)
    paths = openapi.setdefault("paths", {})
    for path, route in ROUTES.items():
        ref = {"$ref": f"#/components/schemas/{route.request.__name__}"}
        responses: dict[str, Any] = {"200": {"description": "Successful Response", "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{route.response.__name__}"}}}}}
        responses |= {status: {"description": text, "content": _ERROR} for status, text in _ANSWERS.items()}
        responses["422"] = {"description": "Invalid input, or below the threshold (with the answers).",
                            "content": {"application/json": {"schema": {"anyOf": [
                                {"$ref": f"#/components/schemas/{route.below_threshold.__name__}"},
                                {"$ref": "#/components/schemas/ErrorBody"}]}}}}
        paths[path] = {"post": {"summary": route.summary, "operationId": route.operation_id,
                                "description": converters.BODY_RULES,
                                "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
                                "responses": responses}}
    for path in ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"):
        paths[path] = {"post": {**rest_oip.INFER_DOC, "parameters": rest_oip.path_parameters(path),
                                "operationId": "infer" + ("_version" if "version" in path else "")}}

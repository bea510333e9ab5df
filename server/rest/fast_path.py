"""The two hot routes, `POST /v1/predict` and `POST /v1/predict/batch`, in plain ASGI: the
request skips FastAPI's middleware, routing and dependency solving, which cost more CPU per
request than the model (bench/README.md, "Hot path at 512 connections"). Everything else,
and the two routes' place in the OpenAPI document, stays with FastAPI (routes.py).

The answers are the FastAPI routes' own, byte for byte: the body is read and validated as
FastAPI reads it (converters.request_from_body), and every answer comes from converters by
the one error table. RequestTracking (request id, log line, metrics, span, Guard, admission,
body limits) wraps this app as it wraps FastAPI's; tests/contract/test_fast_path.py holds the
two side by side."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from server.core import schemas, telemetry
from server.core.service import InferenceService
from server.core.validation import not_json
from server.errors import Internal, ServiceError
from server.rest import converters
from server.rest.middleware import BodyRefused

log = logging.getLogger("server.rest.app")  # the logger of FastAPI's handler for the same fault

PREDICT = "/v1/predict"
PREDICT_BATCH = "/v1/predict/batch"
PATHS = frozenset((PREDICT, PREDICT_BATCH))


async def answer(receive: Receive, work: Awaitable[BaseModel]) -> Response:
    """Runs `work` in this task and answers its result as JSON; if the client goes away
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
        return converters.json_response(await work)
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


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:  # the first, as Starlette's headers.get gives it
        if name == b"content-type":
            return value.decode("latin-1")
    return None


# path -> (request type, the service's method): the method looked up per call, as
# FastAPI's dependency gives the endpoint whatever service the app holds
_ROUTES: dict[str, tuple[type[BaseModel], str]] = {
    PREDICT: (schemas.PredictRequest, "predict"),
    PREDICT_BATCH: (schemas.PredictBatchRequest, "predict_batch"),
}


class PredictRoutes:
    """The two routes' endpoint: read, validate, delegate to the core, answer."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model, method = _ROUTES[scope["path"]]
        try:
            body = await read_body(receive)
            request = converters.request_from_body(model, body, _content_type(scope))
            predict: Callable[[Any], Awaitable[BaseModel]] = getattr(self._service, method)
            response = await answer(receive, predict(request))
        except ServiceError as error:
            response = converters.error_response(error)
        except BodyRefused as refused:  # over the body's size or time limit
            response = converters.http_error_response(refused.status_code, str(refused.detail))
        except ClientGone:  # as FastAPI answers a body it could not read (nobody reads it)
            response = converters.error_response(not_json())
        except Exception:
            log.exception("unhandled error in a REST call")  # the trace stays in the log
            response = converters.error_response(Internal("internal error"))
        await response(scope, receive, send)


class FastPath:
    """The REST app as served: POST to the two hot paths goes to `hot` (PredictRoutes inside
    its own RequestTracking), everything else, lifespan included, to the FastAPI app `api`."""

    def __init__(self, api: FastAPI, hot: ASGIApp) -> None:
        self.api = api
        self._hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PATHS and scope["method"] == "POST":
            await self._hot(scope, receive, send)
        else:
            await self.api(scope, receive, send)

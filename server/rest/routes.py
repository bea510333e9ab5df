"""The REST endpoints but the prediction routes (fast_path.py): each converts, delegates to
the core and returns. Errors raised here are answered by the handlers in app.py, from the
one error table."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, WebSocket
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from server.core import schemas
from server.core.metrics import Metrics
from server.core.service import InferenceService
from server.core.validation import parse_json
from server.errors import NotReady, ServiceError
from server.rest.converters import json_response, stream_error_frame


# async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request
async def _service(conn: HTTPConnection) -> InferenceService:
    return conn.app.state.service


async def _metrics(conn: HTTPConnection) -> Metrics:
    return conn.app.state.metrics


Service = Annotated[InferenceService, Depends(_service)]

router = APIRouter()


@router.get("/v1/model", response_model=schemas.ModelInfo, summary="The serving model")
async def model_info(service: Service) -> Any:
    return json_response(service.model_info())


@router.get("/health/live", summary="Liveness: the process answers")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/health/ready", summary="Readiness: model loaded and warm",
    responses={503: {"model": schemas.ErrorBody, "description": "Not ready."}},
)
async def ready(service: Service) -> dict[str, str]:
    if not service.ready:
        raise NotReady("the model is not ready")
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: Annotated[Metrics, Depends(_metrics)]) -> Response:
    return Response(registry.exposition(), media_type=registry.content_type)


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket, service: Service) -> None:
    """One JSON PredictRequest in, one JSON PredictResponse (or error frame) out, in order."""
    await websocket.accept()

    async def messages() -> AsyncIterator[str | bytes]:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            yield message["text"] if message.get("text") is not None else message.get("bytes", b"")

    answers = service.stream(messages(), lambda raw: parse_json(schemas.PredictRequest, raw))
    try:
        async for outcome in answers:
            if isinstance(outcome, ServiceError):
                await websocket.send_text(stream_error_frame(outcome))
            else:
                await websocket.send_text(outcome.model_dump_json(exclude_none=True))
    except WebSocketDisconnect:
        return
    except ServiceError as error:  # the stream ended (idle): say why, then close
        await websocket.send_text(stream_error_frame(error))
        await websocket.close(1000, error.detail[:120])

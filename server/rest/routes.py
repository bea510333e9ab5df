"""The REST endpoints: each converts, delegates to the core and returns. Errors raised here
are answered by the handlers in app.py, from the one error table. The two prediction
routes are served by fast_path.py; they are declared here too, for the OpenAPI document
and as the reference the fast path is tested against."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from server.core import schemas
from server.core.metrics import Metrics
from server.core.service import InferenceService
from server.core.validation import parse_json
from server.errors import NotReady, ServiceError
from server.rest.converters import json_response, stream_error_frame
from server.rest.fast_path import PREDICT, PREDICT_BATCH, answer


# async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request
async def _service(conn: HTTPConnection) -> InferenceService:
    return conn.app.state.service


async def _metrics(conn: HTTPConnection) -> Metrics:
    return conn.app.state.metrics


Service = Annotated[InferenceService, Depends(_service)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorBody, "description": "The body is not JSON."},
    503: {"model": schemas.ErrorBody, "description": "Overloaded (with Retry-After) or not ready."},
    504: {"model": schemas.ErrorBody, "description": "Waited past the request timeout."},
}


def _with_422(body: type, what: str) -> dict[int | str, dict[str, Any]]:
    return {**_ERRORS, 422: {"model": body | schemas.ErrorBody, "description": what}}


router = APIRouter()


@router.post(
    PREDICT, response_model=schemas.PredictResponse, response_model_exclude_none=True,
    responses=_with_422(schemas.LowConfidenceBody,
                        "Invalid input, or a confidence below the threshold (with the prediction)."),
    summary="One prediction",
)
async def predict(body: schemas.PredictRequest, request: Request, service: Service) -> Any:
    return await answer(request.receive, service.predict(body))


@router.post(
    PREDICT_BATCH, response_model=schemas.PredictBatchResponse,
    response_model_exclude_none=True,
    responses=_with_422(schemas.LowConfidenceBatchBody,
                        "Invalid input, or some text below the threshold (with every prediction)."),
    summary="Up to 256 predictions, in order",
)
async def predict_batch(body: schemas.PredictBatchRequest, request: Request, service: Service) -> Any:
    return await answer(request.receive, service.predict_batch(body))


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

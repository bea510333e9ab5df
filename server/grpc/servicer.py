"""The bet.v1.Inference servicer: converts, delegates to the core, maps errors. Nothing else."""
from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.core.auth import ADMIN, require_scope
from server.core.reload import Reloader
from server.core.service import InferenceService
from server.errors import Internal, NotReady, ServiceError
from server.grpc import converters as conv
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Unary = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _error_of(exc: Exception) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    log.exception("unhandled error in a gRPC call")  # the trace stays here, never in the answer
    return Internal("internal error")


def _answering_errors(method: Unary) -> Unary:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status from the table
            error = _error_of(exc)
        await conv.abort(context, error)

    return wrapper


class InferenceServicer(pb_grpc.InferenceServicer):
    def __init__(self, service: InferenceService, reloader: Reloader | None = None) -> None:
        self._service = service
        self._reloader = reloader

    @_answering_errors
    async def Predict(self, request: pb.PredictRequest, context: grpc.aio.ServicerContext) -> pb.PredictResponse:
        answer = await self._service.predict(
            conv.to_predict_request(request), timeout_s=context.time_remaining()
        )
        return conv.to_pb_response(answer)

    @_answering_errors
    async def PredictBatch(
        self, request: pb.PredictBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictBatchResponse:
        answer = await self._service.predict_batch(
            conv.to_batch_request(request), timeout_s=context.time_remaining()
        )
        return conv.to_pb_batch(answer)

    @_answering_errors
    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        return conv.to_pb_model_info(self._service.model_info())

    @_answering_errors
    async def ReloadModel(
        self, request: pb.ReloadModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadModelResponse:
        require_scope(ADMIN)()  # administration (the call wrapper's Guard checked it first)
        wanted = conv.to_reload_request(request)
        if self._reloader is None:
            raise NotReady("this server cannot reload its model")
        return conv.to_pb_reload(await self._reloader.reload(wanted.version))

    async def PredictStream(
        self, request_iterator: AsyncIterator[pb.PredictRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PredictResponse]:
        # A gRPC stream ends with its status, so the first error ends it (after the answers
        # to the requests before it).
        error: ServiceError | None = None
        try:
            async for outcome in self._service.stream(request_iterator, conv.to_predict_request):
                if isinstance(outcome, ServiceError):
                    error = outcome
                    break
                yield conv.to_pb_response(outcome)
        except Exception as exc:  # noqa: BLE001
            error = _error_of(exc)
        if error is not None:
            await conv.abort(context, error)

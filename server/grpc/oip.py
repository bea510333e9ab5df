"""The Open Inference Protocol's gRPC service (`inference.GRPCInferenceService`): messages to
and from the core's OIP model (server/core/oip.py), errors by the one table. Outputs come
raw (raw_output_contents) when the inputs came raw, as tritonclient reads numbers only from
there, else typed (contents)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from server.core import oip
from server.core.service import InferenceService
from server.errors import MalformedTensor
from server.grpc.converters import Undecodable
from server.grpc.gen.inference import open_inference_grpc_pb2 as pb
from server.grpc.gen.inference import open_inference_grpc_pb2_grpc as pb_grpc
from server.grpc.servicer import _answering_errors, _error_of

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
_CONTENTS = {"BYTES": "bytes_contents", "FP64": "fp64_contents", "INT32": "int_contents", "BOOL": "bool_contents"}


def _parameter(value: pb.InferParameter) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return getattr(value, kind) if kind is not None else None


def _parameters(params: Any) -> dict[str, Any]:
    return {name: _parameter(value) for name, value in params.items()}


def to_request(message: pb.ModelInferRequest | Undecodable) -> oip.InferRequest:
    if isinstance(message, Undecodable):
        raise message.error
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise MalformedTensor(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs")
    inputs = []
    for i, t in enumerate(message.inputs):
        tensor = oip.Tensor(t.name, t.datatype, list(t.shape))
        if raw:
            if t.HasField("contents"):
                raise MalformedTensor(f"input {t.name!r} has contents, and raw_input_contents is used: "
                                      "send one or the other")
            tensor.raw = raw[i]
        else:
            field = _CONTENTS.get(t.datatype)
            tensor.elements = list(getattr(t.contents, field)) if field else []
        inputs.append(tensor)
    outputs = [o.name for o in message.outputs] or None
    return oip.InferRequest(inputs, _parameters(message.parameters), outputs, message.id)


def to_response(
    request: oip.InferRequest, model_name: str, version: str, outputs: list[oip.OutputTensor], *, raw: bool,
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model_name, model_version=version, id=request.id)
    for out in outputs:
        tensor = response.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
        if raw:
            response.raw_output_contents.append(out.raw())
        else:
            getattr(tensor.contents, _CONTENTS[out.datatype]).extend(out.values)
    return response


class OipServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: InferenceService, model_name: str) -> None:
        self._service = service
        self._name = model_name

    @_answering_errors
    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_answering_errors
    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._service.ready)

    @_answering_errors
    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ModelReadyResponse:
        self._check(request)
        return pb.ModelReadyResponse(ready=self._service.ready)

    @_answering_errors
    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**oip.server_metadata())

    @_answering_errors
    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ModelMetadataResponse:
        self._check(request)
        meta = oip.metadata(self._name, self._service.model.info)
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]])

    @_answering_errors
    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ModelInferResponse:
        return await self._infer(request, context.time_remaining())

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's form: each request answered in order; a failed one answers its error
        message and the stream goes on."""
        async for request in request_iterator:
            try:
                answer = await self._infer(request, None)
            except Exception as exc:  # noqa: BLE001 - the error is this message's answer
                yield pb.ModelStreamInferResponse(error_message=_error_of(exc).detail)
                continue
            yield pb.ModelStreamInferResponse(infer_response=answer)

    def _check(self, request: Any) -> None:  # an undecodable unary request: the call wrapper answered it
        oip.check_model(request.name, request.version, self._name, self._service.version)

    async def _infer(self, message: Any, timeout_s: float | None) -> pb.ModelInferResponse:
        request = to_request(message)
        answer = await oip.infer(self._service, self._name, message.model_name, message.model_version, request,
                                 timeout_s)
        return to_response(request, self._name, answer.model_version, answer.outputs,
                           raw=bool(message.raw_input_contents))


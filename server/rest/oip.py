"""The Open Inference Protocol's REST routes (/v2): JSON and Triton's binary tensor
extension to and from the core's OIP model (server/core/oip.py). Errors are the one table's
statuses with the protocol's body, `{"error": "..."}` (converters.error_response).

Binary extension: with an `Inference-Header-Content-Length` header, the body is that many
bytes of JSON followed by the inputs' bytes, each input that carries a `binary_data_size`
parameter taking the next that many; outputs are returned binary when asked (an output's
`binary_data` parameter, or the request's `binary_data_output`), after the JSON, with the
same header in the answer."""
from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from server.core import oip
from server.core.service import InferenceService
from server.core.validation import load_json, parse
from server.errors import InvalidInput, MalformedTensor, ModelNotFound, UnparsableInput

HEADER_LENGTH = "inference-header-content-length"
INFER = "/v2/models/{model}/infer"  # the route's label; a prediction, admitted as the native ones
_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?"
INFER_PATH = re.compile(_MODEL + r"/infer")
_TEMPLATES = (  # a path's label in the metrics and logs
    (INFER_PATH, INFER),
    (re.compile(_MODEL + r"/ready"), "/v2/models/{model}/ready"),
    (re.compile(_MODEL), "/v2/models/{model}"),
)


def template(path: str) -> str | None:
    """The route a /v2 path takes (its model and version as placeholders), or None."""
    for pattern, name in _TEMPLATES:
        if pattern.fullmatch(path):
            return name
    return None


class RequestInput(BaseModel):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    """The protocol's inference request; fields it does not define (`model_name`, which
    KServe's client sends) are ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                    "data": ["What a wonderful film!", "Dull and far too long."]}],
        "parameters": {"confidence_threshold": 0.8}}]})

    id: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


async def _service(conn: HTTPConnection) -> InferenceService:
    return conn.app.state.service


Service = Annotated[InferenceService, Depends(_service)]
router = APIRouter(tags=["Open Inference Protocol (v2)"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not this server's model, or not its serving version: `{\"error\": \"...\"}`."},
    503: {"description": "Not ready, or overloaded (with Retry-After): `{\"error\": \"...\"}`."},
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _model(request: Request, service: InferenceService) -> None:
    params = request.path_params
    oip.check_model(params["model"], params.get("version") or "", request.app.state.oip_model_name,
                    service.version)


# Errors raised here are answered by the app's handlers, with the protocol's body for its paths.
@router.get("/v2", summary="Server metadata (Open Inference Protocol)")
async def server_metadata() -> Response:
    return _json(oip.server_metadata())


@router.get("/v2/health/live", summary="Server liveness (Open Inference Protocol)")
async def server_live() -> Response:
    return _json({"live": True})


@router.get("/v2/health/ready", summary="Server readiness (Open Inference Protocol)", responses=_ERRORS)
async def server_ready(service: Service) -> Response:
    return _json({"ready": service.ready}, 200 if service.ready else 503)


async def _model_ready(request: Request, service: Service) -> Response:
    _model(request, service)
    return _json({"name": request.path_params["model"], "ready": service.ready}, 200 if service.ready else 503)


async def _model_metadata(request: Request, service: Service) -> Response:
    _model(request, service)
    return _json(oip.metadata(request.app.state.oip_model_name, service.model.info))


async def infer(service: InferenceService, model_name: str, path: str, body: bytes,
                header_length: str | None) -> Response:
    """POST /v2/models/{model}[/versions/{version}]/infer, served by fast_path.py as the
    native predictions are: texts as the BYTES input `text`, outputs as the model metadata
    lists them, options as request parameters."""
    match = INFER_PATH.fullmatch(path)
    if match is None:
        raise ModelNotFound(f"no such route: {path}")
    request, binary = _read(body, header_length)
    answer = await oip.infer(service, model_name, match["model"], match["version"] or "", request)
    return _write(request, answer.outputs, binary, model_name, answer.model_version)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` put in place (the document has no home for them)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    return resolve(schema)


for path in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
    router.add_api_route(path, _model_metadata, methods=["GET"], responses=_ERRORS,
                         summary="Model metadata (Open Inference Protocol)")
    router.add_api_route(path + "/ready", _model_ready, methods=["GET"], responses=_ERRORS,
                         summary="Model readiness (Open Inference Protocol)")


# How fast_path.py documents the infer route, which is not a FastAPI route.
INFER_DOC: dict[str, Any] = {
    "summary": "Inference (Open Inference Protocol)",
    "tags": ["Open Inference Protocol (v2)"],
    "responses": {
        "200": {"description": "The output tensors: JSON, or with binary outputs the JSON "
                               "(Inference-Header-Content-Length bytes) and then the tensors."},
        **{str(k): v for k, v in _ERRORS.items()},
        "400": {"description": "A malformed request or tensor: `{\"error\": \"...\"}`."},
        "422": {"description": "Texts the native batch refuses (too long, all whitespace, too "
                               "many): `{\"error\": \"...\"}`."},
    },
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": _inline(InferenceRequest.model_json_schema())},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                     "description": "Binary tensor extension: JSON of "
                                     "Inference-Header-Content-Length bytes, then the tensors."}}},
}


class _Binary:
    """What the binary extension asked of the answer."""

    def __init__(self, request: InferenceRequest) -> None:
        default = request.parameters.get("binary_data_output") is True
        self.by_output = {o.name: o.parameters.get("binary_data", default) is True for o in request.outputs or ()}
        self.default = default

    def wanted(self, name: str) -> bool:
        return self.by_output.get(name, self.default)


def _read(body: bytes, header_length: str | None) -> tuple[oip.InferRequest, _Binary]:
    """The request and its binary part's tensors. MalformedTensor (400) for what is malformed."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise MalformedTensor(f"{HEADER_LENGTH} {header_length!r} is not a length within the "
                               f"{len(body)}-byte body")
        head, tail = body[:int(header_length)], body[int(header_length):]
    else:
        head, tail = body, b""
    if not head:
        raise MalformedTensor("the body holds no inference request")
    try:
        request = parse(InferenceRequest, load_json(head))
    except UnparsableInput:
        raise
    except InvalidInput as exc:  # not the protocol's request object: a malformed request
        raise MalformedTensor(exc.detail) from None
    inputs, at = [], 0
    for given in request.inputs:
        tensor = oip.Tensor(given.name, given.datatype, list(given.shape))
        size = given.parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or at + size > len(tail):
                raise MalformedTensor(f"input {given.name!r}: binary_data_size {size!r} runs past the "
                                   f"{len(tail)} bytes after the JSON")
            tensor.raw = tail[at:at + size]
            at += size
        elif given.data is None:
            raise MalformedTensor(f"input {given.name!r} has neither data nor binary_data_size")
        else:
            tensor.elements = given.data if isinstance(given.data, list) else [given.data]
        inputs.append(tensor)
    if at != len(tail):
        raise MalformedTensor(f"{len(tail) - at} bytes after the JSON belong to no input")
    outputs = [o.name for o in request.outputs] if request.outputs else None
    return oip.InferRequest(inputs, request.parameters, outputs, request.id), _Binary(request)


def _write(request: oip.InferRequest, outputs: list[oip.OutputTensor], binary: _Binary, model_name: str,
           version: str) -> Response:
    described, chunks = [], []
    for out in outputs:
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        if binary.wanted(out.name):
            raw = out.raw()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = [v.decode() if isinstance(v, bytes) else v for v in out.values]
        described.append(entry)
    answer: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": described}
    if request.id:
        answer["id"] = request.id
    head = orjson.dumps(answer)
    if not chunks:
        return Response(head, media_type="application/json")
    return Response(head + b"".join(chunks), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(head))})


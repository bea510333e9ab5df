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
from starlette.requests import HTTPConnection

from server.core import oip, oip_schema
from server.core.oip_schema import InferenceRequest
from server.core.service import InferenceService
from server.core.validation import load_json, parse
from server.errors import InvalidInput, MalformedTensor, ModelNotFound, UnparsableInput

HEADER_LENGTH = "inference-header-content-length"
_LENGTH = {"type": "string", "pattern": "^[0-9]+$"}  # the header's value, as the document states it
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


async def _service(conn: HTTPConnection) -> InferenceService:
    return conn.app.state.service


Service = Annotated[InferenceService, Depends(_service)]
PATH_PARAMETERS = {  # what the document says of each path parameter, on every /v2 route
    "model": "The model's name: the server's one model (`BET_OIP_MODEL_NAME`, default `bet`); another is 404.",
    "version": "A version of the model: the serving one (`GET /v1/model` names it); another is 404.",
}
router = APIRouter(tags=["Open Inference Protocol (v2)"])


def _content(component: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}


def _answers(ok: str, errors: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """An operation's answers: 200 with the `ok` component; each error status with its
    description and the protocol's error body."""
    answers: dict[int | str, dict[str, Any]] = {200: {"description": "Successful Response", "content": _content(ok)}}
    for status, description in (errors or {}).items():
        answers[status] = {"description": description, "content": _content(oip_schema.ERROR)}
    return answers


_NOT_FOUND = "Not this server's model, or not its serving version."
# From the model's metadata, its name and serving version to the routes of that version.
_VERSION_LINKS = {"links": {
    f"{operation}_version": {"operationId": f"{operation}_version", "description": f"{summary} of this version.",
                             "parameters": {"model": "$response.body#/name", "version": "$response.body#/versions/0"}}
    for operation, summary in (("model_metadata", "Metadata"), ("model_ready", "Readiness"), ("infer", "Inference"))}}


def _not_ready(component: str) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in (component, oip_schema.ERROR)]
    return {"description": "Not ready: the same body with `ready` false (or an error).",
            "content": {"application/json": {"schema": {"anyOf": refs}}}}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def path_parameters(path: str) -> list[dict[str, Any]]:
    """The document's path parameters of a /v2 route (the routes read them from the path)."""
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"},
             "description": PATH_PARAMETERS[name], **({"example": "bet"} if name == "model" else {})}
            for name in ("model", "version") if "{" + name + "}" in path]


def _check(request: Request, service: InferenceService) -> None:
    params = request.path_params
    oip.check_model(params["model"], params.get("version", ""), request.app.state.oip_model_name, service.version)


# Errors raised here are answered by the app's handlers, with the protocol's body for its paths.
@router.get("/v2", summary="Server metadata (Open Inference Protocol)", responses=_answers("ServerMetadataResponse"))
async def server_metadata() -> Response:
    return _json(oip.server_metadata())


@router.get("/v2/health/live", summary="Server liveness (Open Inference Protocol)",
            responses=_answers("ServerLiveResponse"))
async def server_live() -> Response:
    return _json({"live": True})


@router.get("/v2/health/ready", summary="Server readiness (Open Inference Protocol)",
            responses={**_answers("ServerReadyResponse"), 503: _not_ready("ServerReadyResponse")})
async def server_ready(service: Service) -> Response:
    return _json({"ready": service.ready}, 200 if service.ready else 503)


async def _model_metadata(request: Request, service: Service) -> Response:
    _check(request, service)
    return _json(oip.metadata(request.app.state.oip_model_name, service.model.info))


async def _model_ready(request: Request, service: Service) -> Response:
    _check(request, service)
    return _json({"name": request.path_params["model"], "ready": service.ready}, 200 if service.ready else 503)


def _add_model_routes() -> None:
    """Metadata and readiness of the model, and of a version of it: the path parameters are
    read from the path (the document declares them), so no route answers FastAPI's 422."""
    for path, suffix in (("/v2/models/{model}", ""), ("/v2/models/{model}/versions/{version}", "_version")):
        metadata = _answers("ModelMetadataResponse", {404: _NOT_FOUND})
        if not suffix:
            metadata[200] |= _VERSION_LINKS
        parameters = {"parameters": path_parameters(path)}
        router.add_api_route(path, _model_metadata, methods=["GET"], operation_id="model_metadata" + suffix,
                             summary="Model metadata (Open Inference Protocol)", openapi_extra=parameters,
                             responses=metadata)
        router.add_api_route(path + "/ready", _model_ready, methods=["GET"], operation_id="model_ready" + suffix,
                             summary="Model readiness (Open Inference Protocol)", openapi_extra=parameters,
                             responses={**_answers("ModelReadyResponse", {404: _NOT_FOUND}),
                                        503: _not_ready("ModelReadyResponse")})


_add_model_routes()


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


# How fast_path.py documents the infer route, which is not a FastAPI route: its bodies are
# the components of server/core/oip_schema.py.
_BINARY = {"schema": {"type": "string", "format": "binary"}}
INFER_DOC: dict[str, Any] = {
    "summary": "Inference (Open Inference Protocol)",
    "description": oip_schema.INFER_RULES,
    "tags": ["Open Inference Protocol (v2)"],
    "responses": {
        "200": {"description": "The outputs: JSON, or with outputs in binary the JSON (its length in the "
                               "answer's Inference-Header-Content-Length) and then their bytes.",
                "headers": {"Inference-Header-Content-Length": {
                    "description": "With outputs in binary: the length of the JSON at the start of the body.",
                    "schema": _LENGTH}},
                "content": {**_content("InferenceResponse"), "application/octet-stream": _BINARY}},
        **{str(status): answer for status, answer in _answers("InferenceResponse", {
            400: "A request or tensor that cannot be read.", 404: _NOT_FOUND,
            422: "Texts the native batch refuses (empty, blank, too long, too many).",
            503: "Overloaded (with Retry-After) or not ready.", 504: "Waited past the request timeout.",
        }).items() if status != 200},
    },
    # JSON only: the binary extension's body (JSON, then bytes, split where a header says)
    # is beyond a schema, so the description states it
    "requestBody": {"required": True, "content": _content("InferenceRequest")},
}


class _Binary:
    """What the binary extension asked of the answer."""

    def __init__(self, request: InferenceRequest) -> None:
        default = bool(oip.parameter(request.parameters, "binary_data_output"))
        self.by_output = {o.name: bool(oip.parameter(o.parameters, "binary_data", oip.OUTPUT_PARAMETERS, default))
                          for o in request.outputs or ()}
        self.default = default

    def wanted(self, name: str) -> bool:
        return self.by_output.get(name, self.default)


def _read(body: bytes, header_length: str | None) -> tuple[oip.InferRequest, _Binary]:
    """The request and its binary part's tensors. MalformedTensor (400) for what is malformed."""
    if header_length is not None:
        if not re.fullmatch(_LENGTH["pattern"], header_length) or int(header_length) > len(body):
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
            tensor.elements = given.data
        inputs.append(tensor)
    if at != len(tail):
        raise MalformedTensor(f"{len(tail) - at} bytes after the JSON belong to no input")
    outputs = [o.name for o in request.outputs] if request.outputs else None
    return oip.InferRequest(inputs, request.parameters, outputs, request.id), _Binary(request)


def _write(request: oip.InferRequest, outputs: list[oip.OutputTensor], binary: _Binary, model_name: str,
           version: str) -> Response:
    described, chunks = [], []
    for out in outputs:
        if binary.wanted(out.name):
            raw = out.raw()
            described.append({"name": out.name, "datatype": out.datatype, "shape": out.shape,
                              "parameters": {"binary_data_size": len(raw)}})
            chunks.append(raw)
        else:
            described.append(out.json())
    head = orjson.dumps(oip_schema.json_answer(request.id, model_name, version, described))
    if not chunks:
        return Response(head, media_type="application/json")
    return Response(head + b"".join(chunks), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(head))})


"""The Open Inference Protocol's REST bodies (/v2): the inference request as the REST door
reads its JSON (pydantic checks the types only; the protocol's rules, the same on gRPC, are
the codec's, server/core/oip.py), and the JSON Schema of every body for the OpenAPI
document, stating those rules from the codec's own tables, with examples the codec writes.

What a JSON Schema cannot state is in the infer operation's description (INFER_RULES): the
shape's N is the number of texts, a text is read without its surrounding whitespace, and the
binary tensor extension (a body of JSON and then bytes)."""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, WithJsonSchema
from pydantic.json_schema import models_json_schema

from server.core import oip, schemas

_REF = "#/components/schemas/{model}"
ERROR = "InferenceErrorResponse"
_JSON_ITEMS: dict[str, dict[str, Any]] = {  # an element of each datatype in JSON data
    "BYTES": {"type": "string"},
    "INT32": {"type": "integer", "minimum": -2**31, "maximum": 2**31 - 1},
    "FP64": {"type": "number"},
    "BOOL": {"type": "boolean"},
}
_TEXT = TypeAdapter(schemas.Text).json_schema()  # the native doors' text: 1 to 10,000 characters, not blank
_SHAPE: dict[str, Any] = {
    "type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2,
    "prefixItems": [{"type": "integer", "minimum": 1, "maximum": oip.MAX_TEXTS}, {"type": "integer", "const": 1}],
    "description": "`[N]` or `[N, 1]`: N texts.",
}
_DATA: dict[str, Any] = {
    "type": "array", "minItems": 1, "maxItems": oip.MAX_TEXTS,
    "items": {"anyOf": [_TEXT, {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 1}]},
    "description": "The texts, in order: flat, or nested as the shape [N, 1] is (each a list of one text).",
}

INFER_RULES = f"""One input, `{oip.INPUT}` (or any name), datatype `{oip.INPUT_DATATYPE}`, shape `[N]` or
`[N, 1]` with N from 1 to {oip.MAX_TEXTS}, and N texts as its data. A text has 1 to 10,000
characters as sent and one that is not whitespace; the model reads it without its
surrounding whitespace. A tensor that cannot be read is 400; texts the native batch refuses
(empty, blank, too long, too many) are 422. Options are request `parameters`; other
parameters and fields (`model_name`) are ignored. The answer holds the outputs asked for (all
by default, less the uncertainty ones with `return_uncertainty` false, and `cot_length` and
`reasoning` only with `return_cot`), each with first dimension N.

**Binary tensor extension:** with an `Inference-Header-Content-Length` header, the body is
that many bytes of this JSON, then each input's bytes: an input carries
`parameters.binary_data_size` in place of `data`, its texts each a 4-byte little-endian
length and then that many bytes of UTF-8. Outputs asked for in binary (`binary_data`, or the
request's `binary_data_output`) follow the answer's JSON, whose length the answer's header of
the same name gives; in that JSON they carry `parameters.binary_data_size` in place of
`data`."""


def _parameter(spec: oip.Parameter) -> dict[str, Any]:
    # the default on the typed form only: a generator would give it to the string form too
    if spec.kind == "flag":
        typed: dict[str, Any] = {"type": "boolean", "default": spec.default}
        written = {"type": "string", "pattern": oip.FLAG_PATTERN, "description": '"true" or "false", in any case.'}
    else:
        typed = {"type": "number", "default": spec.default, **{
            k: v for k, v in (("minimum", spec.minimum), ("maximum", spec.maximum)) if v is not None}}
        written = {"type": "string", "pattern": oip.NUMBER_PATTERN,
                   "description": "The number written out (for clients that cannot send a double)."}
    return {"anyOf": [typed, written], "description": f"{spec.doc} Default: {json.dumps(spec.default)}."}


def _parameters(table: dict[str, oip.Parameter], doc: str) -> dict[str, Any]:
    return {"type": "object", "description": doc, "additionalProperties": True,
            "properties": {name: _parameter(spec) for name, spec in table.items()}}


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A JSON integer, as JSON Schema counts them (2.0 is one); strict: not "2", not true, not 2.5.
_Integer = Annotated[int, BeforeValidator(_integral)]


def _required(*names: str) -> Any:
    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = [*schema.get("required", []), *names]
        for name in names:
            schema["properties"][name].pop("default", None)
    return extra


class RequestInput(BaseModel):
    """The input tensor: the texts."""

    model_config = ConfigDict(strict=True, extra="ignore", json_schema_extra=_required("data"))

    name: str = Field(description=f"`{oip.INPUT}`, or any name: the model takes this one input.")
    shape: Annotated[list[_Integer], WithJsonSchema(_SHAPE)]
    datatype: str = Field(json_schema_extra={"const": oip.INPUT_DATATYPE})
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Binary tensor extension only: `binary_data_size`, the input's bytes after the JSON.")
    data: Annotated[list[Any] | None, WithJsonSchema(_DATA)] = None


class RequestOutput(BaseModel):
    """An output asked for."""

    model_config = ConfigDict(strict=True, extra="ignore")

    name: str = Field(json_schema_extra={"enum": [o.name for o in oip.OUTPUTS]})
    parameters: Annotated[dict[str, Any], WithJsonSchema(_parameters(
        oip.OUTPUT_PARAMETERS, "Other parameters are ignored."))] = Field(default_factory=dict)


_EXAMPLE_TEXTS = ["What a wonderful film!", "Dull and far too long."]
REQUEST_EXAMPLES: list[Any] = [  # JSON values, as pydantic's json_schema_extra takes them
    {"inputs": [{"name": oip.INPUT, "shape": [2], "datatype": oip.INPUT_DATATYPE, "data": _EXAMPLE_TEXTS}],
     "parameters": {"confidence_threshold": 0.8}},
    {"id": "with-evidence",
     "inputs": [{"name": oip.INPUT, "shape": [2, 1], "datatype": oip.INPUT_DATATYPE,
                 "data": [[t] for t in _EXAMPLE_TEXTS]}],
     "parameters": {"return_cot": True},
     "outputs": [{"name": "label"}, {"name": "confidence"}, {"name": "reasoning"}]},
]


class InferenceRequest(BaseModel):
    """The protocol's inference request."""

    model_config = ConfigDict(strict=True, extra="ignore", json_schema_extra={"examples": REQUEST_EXAMPLES})

    id: str = Field("", description="Returned in the answer.")
    parameters: Annotated[dict[str, Any], WithJsonSchema(_parameters(
        oip.PARAMETERS, "The options, named as the native fields; other parameters are ignored."))] = Field(
        default_factory=dict)
    inputs: list[RequestInput] = Field(json_schema_extra={"minItems": 1, "maxItems": 1})
    outputs: list[RequestOutput] | None = Field(
        None, description="The outputs to answer, in this order; absent, null or empty: the default ones.")


def _output(o: oip.Output) -> dict[str, Any]:
    rank = 2 if o.per_label else 1
    return {"type": "object", "description": o.doc + (" Shape [N, C]: C labels." if o.per_label else " Shape [N]."),
            "required": ["name", "datatype", "shape", "data"],
            "properties": {
                "name": {"type": "string", "const": o.name},
                "datatype": {"type": "string", "const": o.datatype},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": rank,
                          "maxItems": rank},
                "data": {"type": "array", "items": _JSON_ITEMS[o.datatype], "description": "Row-major."}}}


def _output_component(name: str) -> str:
    return "Output" + "".join(part.title() for part in name.split("_"))


def _example_answers() -> tuple[list[schemas.PredictResponse], list[str]]:
    first = schemas.PredictResponse.model_validate(schemas.PredictResponse.model_json_schema()["examples"][0])
    second = first.model_copy(update={
        "prediction": "negative", "label_id": 0, "confidence": 0.88,
        "probabilities": {"negative": 0.88, "positive": 0.12},
        "uncertainty": schemas.Uncertainty(total=0.367, aleatoric=0.351, epistemic=0.016)})
    with_cot = [a.model_copy(update={"cot_length": k, "reasoning": steps}) for a, k, steps in (
        (first, 2, ["read 6 word pieces in 1 window", "wonderful +0.41", "positive at 0.93"]),
        (second, 3, ["read 7 word pieces in 1 window", "dull -0.38, long -0.12", "negative at 0.88"]))]
    return with_cot, list(first.probabilities)


def response_example(request: dict[str, Any]) -> dict[str, Any]:
    """The answer's JSON to an example request, as the codec writes it."""
    parsed = InferenceRequest.model_validate(request)
    answers, labels = _example_answers()
    tensor = parsed.inputs[0]
    infer = oip.InferRequest([oip.Tensor(tensor.name, tensor.datatype, tensor.shape, elements=tensor.data)],
                             parsed.parameters, [o.name for o in parsed.outputs or ()] or None, parsed.id)
    _, threshold = oip.to_batch(infer)
    outputs = oip.to_outputs(infer, answers, labels, threshold)
    return json_answer(infer.id, "bet", answers[0].model_version, [out.json() for out in outputs])


def json_answer(request_id: str, model_name: str, version: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer's JSON: the outputs' entries (each `OutputTensor.json()`, or its binary form)."""
    answer: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": entries}
    if request_id:
        answer["id"] = request_id
    return answer


def _metadata_example() -> dict[str, Any]:
    info = schemas.ModelInfo.model_validate(schemas.ModelInfo.model_json_schema()["examples"][0])
    return oip.metadata("bet", info)


def _object(properties: dict[str, Any], description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "required": list(properties), "properties": properties,
            "examples": [example]}


def components() -> dict[str, dict[str, Any]]:
    """Every schema of the protocol's bodies, named as the OpenAPI document's components."""
    _, top = models_json_schema([(InferenceRequest, "validation")], ref_template=_REF)
    found = dict(top.get("$defs", {}))
    outputs = {_output_component(o.name): _output(o) for o in oip.OUTPUTS}
    found |= outputs
    tensor = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"}, "datatype": {"type": "string", "enum": sorted(_JSON_ITEMS)},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1},
                  "description": "-1: any size (N texts; C labels in the model's `labels`)."}}}
    found["MetadataTensor"] = tensor
    ref = {name: {"$ref": _REF.format(model=name)} for name in (*outputs, "MetadataTensor")}
    found["InferenceResponse"] = {
        "type": "object", "required": ["model_name", "model_version", "outputs"],
        "description": "The answer: the outputs asked for, each with first dimension N.",
        "examples": [response_example(r) for r in REQUEST_EXAMPLES],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string", "description": "The version that answered."},
            "id": {"type": "string", "description": "The request's id, when it has one."},
            "outputs": {"type": "array", "items": {
                "oneOf": [ref[name] for name in outputs],
                "discriminator": {"propertyName": "name", "mapping": {
                    o.name: _REF.format(model=_output_component(o.name)) for o in oip.OUTPUTS}}}}}}
    found["ServerMetadataResponse"] = _object(
        {"name": {"type": "string"}, "version": {"type": "string", "description": "The server's release."},
         "extensions": {"type": "array", "items": {"type": "string", "enum": list(oip.EXTENSIONS)}}},
        "The server's name, version and protocol extensions.", oip.server_metadata())
    found["ModelMetadataResponse"] = _object(
        {"name": {"type": "string"},
         "versions": {"type": "array", "items": {"type": "string"}, "description": "The serving version."},
         "platform": {"type": "string", "const": oip.PLATFORM},
         "inputs": {"type": "array", "items": ref["MetadataTensor"]},
         "outputs": {"type": "array", "items": ref["MetadataTensor"]}},
        "The model's input and every output it can answer.", _metadata_example())
    found["ServerLiveResponse"] = _object({"live": {"type": "boolean"}}, "Liveness.", {"live": True})
    found["ServerReadyResponse"] = _object({"ready": {"type": "boolean"}}, "Readiness: 503 when false.",
                                           {"ready": True})
    found["ModelReadyResponse"] = _object({"name": {"type": "string"}, "ready": {"type": "boolean"}},
                                          "The model's readiness: 503 when false.", {"name": "bet", "ready": True})
    found[ERROR] = _object({"error": {"type": "string"}}, "Every error under /v2.",
                           {"error": "input 'text' has shape [2] but holds 1 elements"})
    return found

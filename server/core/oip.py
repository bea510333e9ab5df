"""The Open Inference Protocol (KServe "v2", Triton's wire format) in the core: its tensors
read into the core's batch request and the core's answers written back as tensors, the same
for both doors (server/rest/oip.py, server/grpc/oip.py only move bytes and messages).

A hand-written codec: the maintained ones (tritonclient.utils, kserve.protocol) come with
grpcio and protobuf pins that differ from the server's, and each carries a whole client.

Inputs: one BYTES tensor (`text`, or any name when it is the only input), shape [N] or
[N, 1], its elements UTF-8 text. Outputs, first dimension N, in `OUTPUTS` order; floats as
FP64 so that the numbers are the native doors' own. Options are request parameters named as
the native fields (`PARAMETERS`). `accepted` says per text whether its confidence reaches the
caller's threshold; a below-threshold text is answered, never refused, since a generic client
cannot read the native doors' below-threshold details.

These tables (INPUT, OUTPUTS, PARAMETERS, the patterns and limits) are also what the OpenAPI
document states of the protocol's bodies (server/core/oip_schema.py)."""
from __future__ import annotations

import importlib.metadata
import json
import math
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.core import schemas
from server.core.service import InferenceService, below_threshold
from server.core.validation import parse
from server.errors import MalformedTensor, ModelNotFound

INPUT = "text"
INPUT_DATATYPE = "BYTES"
MAX_TEXTS = schemas.MAX_BATCH_TEXTS  # N of the input's shape, as the native batch limits it
PLATFORM = "pytorch"
try:  # the server's own release, as ServerMetadata reports it (the model's version is the model's)
    SERVER_VERSION = importlib.metadata.version("bet")
except importlib.metadata.PackageNotFoundError:
    SERVER_VERSION = "unknown"
EXTENSIONS = ("binary_tensor_data", "model_version", "parameters")
DEFAULT_THRESHOLD = 0.5  # what `accepted` compares with when the caller sets no threshold


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str
    doc: str  # what it holds per text, as the OpenAPI document says it
    per_label: bool = False  # shape [N, C] rather than [N]
    uncertainty: bool = False  # left out with return_uncertainty false
    cot: bool = False  # only with return_cot true


OUTPUTS = (
    Output("label", "BYTES", "The label name."),
    Output("label_id", "INT32", "The index of that label in the model's labels."),
    Output("confidence", "FP64", "The calibrated probability of the label."),
    Output("probabilities", "FP64", "The calibrated probability of each label, in the model's label order.",
           per_label=True),
    Output("uncertainty_total", "FP64", "Entropy of the mean predictive distribution (nats).", uncertainty=True),
    Output("uncertainty_aleatoric", "FP64", "Mean entropy of the individual views (nats).", uncertainty=True),
    Output("uncertainty_epistemic", "FP64", "total - aleatoric: mutual information, >= 0 (nats).",
           uncertainty=True),
    Output("accepted", "BOOL", "Whether the confidence reaches the confidence_threshold parameter."),
    Output("cot_length", "INT32", "The recommended chain-of-thought length k*.", cot=True),
    Output("reasoning", "BYTES", "The evidence behind the prediction: a JSON list of strings.", cot=True),
)
_BY_NAME = {o.name: o for o in OUTPUTS}

# A parameter may come as its JSON (or protobuf) type or, for clients that cannot send that
# type (KServe's gRPC client has no double), as a string of this form.
FLAG_PATTERN = "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"
NUMBER_PATTERN = "^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"


@dataclass(frozen=True)
class Parameter:
    """A parameter the protocol's requests may carry: a flag (a boolean, or "true"/"false" in
    any case) or a number (a double, an int64, or a decimal string) from minimum to maximum."""

    kind: str  # "flag" or "number"
    default: bool | float
    doc: str
    minimum: float | None = None
    maximum: float | None = None


# The request's parameters; any other is ignored. The last two are REST's binary tensor extension's.
PARAMETERS = {
    "return_uncertainty": Parameter("flag", True, "Answer the outputs uncertainty_total, uncertainty_aleatoric "
                                    "and uncertainty_epistemic (with no `outputs` asked for)."),
    "return_cot": Parameter("flag", False, "Answer cot_length and reasoning too (they cost extra forward "
                            "passes); asking for either output does the same."),
    "confidence_threshold": Parameter("number", DEFAULT_THRESHOLD, "What the output `accepted` compares each "
                                      "confidence with; a text below it is answered all the same.", 0.0, 1.0),
    "binary_data_output": Parameter("flag", False, "REST, binary tensor extension: every output in binary "
                                    "after the JSON, unless its own `binary_data` says otherwise."),
}
# A requested output's parameters (REST, binary tensor extension).
OUTPUT_PARAMETERS = {
    "binary_data": Parameter("flag", False, "This output in binary after the JSON (default: the request's "
                             "binary_data_output)."),
}
_NUMPY = {"FP64": "<f8", "INT32": "<i4", "BOOL": "?"}


@dataclass
class Tensor:
    """An input as a door read it: `elements` when the data came typed (JSON data, gRPC
    contents), `raw` when it came as bytes (REST binary extension, raw_input_contents)."""

    name: str
    datatype: str
    shape: list[int]
    elements: list[Any] | None = None
    raw: bytes | None = None


@dataclass
class InferRequest:
    inputs: list[Tensor]
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None  # asked-for names, in the caller's order; None: all
    id: str = ""


@dataclass
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    values: list[Any]  # flattened, row-major

    def json(self) -> dict[str, Any]:
        """The tensor in JSON data (REST): BYTES elements as text."""
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape,
                "data": [v.decode() if isinstance(v, bytes) else v for v in self.values]}

    def raw(self) -> bytes:
        """The row-major little-endian bytes (BYTES: each element length-prefixed)."""
        if self.datatype == "BYTES":
            return encode_bytes(v if isinstance(v, bytes) else str(v).encode() for v in self.values)
        return np.asarray(self.values, dtype=_NUMPY[self.datatype]).tobytes()


def check_model(name: str, version: str, serving_name: str, serving_version: str) -> None:
    """ModelNotFound (404 / NOT_FOUND) unless the name is the served model's and the version
    empty or the serving one."""
    if name != serving_name:
        raise ModelNotFound(f"unknown model {name!r}: this server serves {serving_name!r}")
    if version and version != serving_version:
        raise ModelNotFound(f"model {name!r} has no version {version!r} serving: the serving version "
                            f"is {serving_version!r}")


def server_metadata() -> dict[str, Any]:
    """The server metadata object (REST body; the gRPC door copies it into its message)."""
    return {"name": "bet", "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


@dataclass
class InferAnswer:
    outputs: list[OutputTensor]
    model_version: str  # the version that answered


async def infer(service: InferenceService, served_name: str, name: str, version: str, request: InferRequest,
                timeout_s: float | None = None) -> InferAnswer:
    """One inference of the protocol, whichever door read it: the model named, the texts
    read, answered by the core's batch (not-ready and overload as the native doors refuse
    them), written as the outputs asked for."""
    check_model(name, version, served_name, service.version)
    batch, threshold = to_batch(request)
    answers = (await service.predict_batch(batch, timeout_s=timeout_s)).predictions
    outputs = to_outputs(request, answers, service.model.info.labels, threshold)
    return InferAnswer(outputs, answers[0].model_version)


def metadata(name: str, info: schemas.ModelInfo) -> dict[str, Any]:
    """The model metadata object (REST body; the gRPC door copies it into its message)."""
    labels = len(info.labels)
    outputs = [{"name": o.name, "datatype": o.datatype, "shape": [-1, labels] if o.per_label else [-1]}
               for o in OUTPUTS]
    return {"name": name, "versions": [info.version], "platform": PLATFORM,
            "inputs": [{"name": INPUT, "datatype": INPUT_DATATYPE, "shape": [-1]}], "outputs": outputs}


def decode_bytes(raw: bytes) -> list[bytes]:
    """BYTES elements from their wire form: each a 4-byte little-endian length, then that many
    bytes. MalformedTensor for a length that runs past the end."""
    items: list[bytes] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise MalformedTensor(f"BYTES tensor: {len(raw) - at} stray bytes at offset {at}, too few for a "
                               "4-byte length prefix")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise MalformedTensor(f"BYTES tensor: element {len(items)} claims {size} bytes at offset {at}, "
                               f"but only {len(raw) - at} remain")
        items.append(raw[at:at + size])
        at += size
    return items


def encode_bytes(items: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def to_batch(request: InferRequest) -> tuple[schemas.PredictBatchRequest, float]:
    """The core's batch request (threshold 0: nothing is refused) and the threshold that
    `accepted` compares with. MalformedTensor for a malformed tensor, InvalidInput for texts
    the native batch refuses."""
    tensor = _text_input(request.inputs)
    texts = _texts(tensor)
    if not texts:
        raise MalformedTensor(f"input {tensor.name!r} holds no text")
    params = request.parameters
    threshold = float(parameter(params, "confidence_threshold"))
    if request.outputs is not None:
        unknown = [n for n in request.outputs if n not in _BY_NAME]
        if unknown:
            raise MalformedTensor(f"unknown output {unknown[0]!r}; this model has {', '.join(_BY_NAME)}")
    wants_cot = parameter(params, "return_cot") or any(
        _BY_NAME[n].cot for n in request.outputs or ())
    # the native batch's rules (number of texts, their length) in the native words
    batch = parse(schemas.PredictBatchRequest, {
        "texts": texts, "return_uncertainty": True, "return_cot": wants_cot, "confidence_threshold": 0.0})
    return batch, threshold


def to_outputs(
    request: InferRequest, answers: Sequence[schemas.PredictResponse], labels: Sequence[str], threshold: float,
) -> list[OutputTensor]:
    """The output tensors asked for (all by default, without the uncertainty ones when
    return_uncertainty is false and without cot_length and reasoning unless return_cot)."""
    if request.outputs is not None:
        chosen = [_BY_NAME[n] for n in request.outputs]
    else:
        with_uncertainty = parameter(request.parameters, "return_uncertainty")
        with_cot = parameter(request.parameters, "return_cot")
        chosen = [o for o in OUTPUTS if (with_uncertainty or not o.uncertainty) and (with_cot or not o.cot)]
    n = len(answers)
    return [OutputTensor(o.name, o.datatype, [n, len(labels)] if o.per_label else [n],
                         _values(o.name, answers, labels, threshold)) for o in chosen]


def _values(name: str, answers: Sequence[schemas.PredictResponse], labels: Sequence[str],
            threshold: float) -> list[Any]:
    if name == "label":
        return [a.prediction.encode() for a in answers]
    if name == "label_id":
        return [a.label_id for a in answers]
    if name == "confidence":
        return [a.confidence for a in answers]
    if name == "probabilities":
        return [a.probabilities[label] for a in answers for label in labels]
    if name == "accepted":
        return [not below_threshold(a.confidence, threshold) for a in answers]
    if name == "cot_length":
        return [a.cot_length or 0 for a in answers]
    if name == "reasoning":
        return [json.dumps(a.reasoning or [], ensure_ascii=False).encode() for a in answers]
    part = name.removeprefix("uncertainty_")
    return [getattr(a.uncertainty, part) for a in answers]


def _text_input(inputs: Sequence[Tensor]) -> Tensor:
    """The one input (named `text`, or any name: a client may name it after its own model)."""
    if not inputs:
        raise MalformedTensor(f"no input: send the texts as input {INPUT!r} ({INPUT_DATATYPE})")
    if len(inputs) > 1:
        raise MalformedTensor(f"the model takes one input, {INPUT!r}; the request has {len(inputs)}: "
                              f"{[t.name for t in inputs]}")
    tensor = inputs[0]
    if tensor.datatype != INPUT_DATATYPE:
        raise MalformedTensor(f"input {tensor.name!r} has datatype {tensor.datatype!r}; texts are {INPUT_DATATYPE}")
    return tensor


def _texts(tensor: Tensor) -> list[str]:
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(d < 0 for d in shape):
        raise MalformedTensor(f"input {tensor.name!r} has shape {shape}; texts are [N] or [N, 1]")
    if tensor.raw is not None:
        elements: list[Any] = decode_bytes(tensor.raw)
    else:
        elements = _flatten(tensor.elements or [], tensor.name)
    if len(elements) != math.prod(shape):
        raise MalformedTensor(f"input {tensor.name!r} has shape {shape} but holds {len(elements)} elements")
    texts = []
    for i, element in enumerate(elements):
        if isinstance(element, bytes):
            try:
                element = element.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedTensor(f"input {tensor.name!r} element {i} is not UTF-8") from None
        if not isinstance(element, str):
            raise MalformedTensor(f"input {tensor.name!r} element {i} is {type(element).__name__}, not text")
        texts.append(element)
    return texts


def _flatten(data: list[Any], name: str) -> list[Any]:
    """The elements of JSON data: flat, or nested as [N, 1] is (each element a list of one)."""
    flat: list[Any] = []
    for i, item in enumerate(data):
        if isinstance(item, list):
            if len(item) != 1 or isinstance(item[0], list):
                raise MalformedTensor(f"input {name!r} element {i} is a list of {len(item)}: texts nest at "
                                      "most as [N, 1], each a list of one text")
            item = item[0]
        flat.append(item)
    return flat


def parameter(params: dict[str, Any], name: str, table: dict[str, Parameter] = PARAMETERS,
              default: bool | float | None = None) -> bool | float:
    """The value of parameter `name` as its table entry reads it (its default when absent).
    MalformedTensor for a value of another type, or out of its range."""
    spec = table[name]
    value = params.get(name, spec.default if default is None else default)
    if spec.kind == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(FLAG_PATTERN, value):
            return value.lower() == "true"
        raise MalformedTensor(f"parameter {name}: {value!r} is not a boolean")
    if isinstance(value, str) and re.fullmatch(NUMBER_PATTERN, value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedTensor(f"parameter {name}: {value!r} is not a number")
    if not math.isfinite(value) or not (spec.minimum is None or spec.minimum <= value) or not (
            spec.maximum is None or value <= spec.maximum):
        raise MalformedTensor(f"parameter {name}: {value!r} is not a number from {spec.minimum} to {spec.maximum}")
    return float(value)

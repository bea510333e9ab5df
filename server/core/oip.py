"""The Open Inference Protocol (KServe "v2", Triton's wire format) in the core: its tensors
read into the core's batch request and the core's answers written back as tensors, the same
for both doors (server/rest/oip.py, server/grpc/oip.py only move bytes and messages).

A hand-written codec: the maintained ones (tritonclient.utils, kserve.protocol) come with
grpcio and protobuf pins that differ from the server's, and each carries a whole client.

Inputs: one BYTES tensor (`text`, or any name when it is the only input), shape [N] or
[N, 1], its elements UTF-8 text. Outputs, first dimension N, in `OUTPUTS` order; floats as
FP64 so that the numbers are the native doors' own. Options are request parameters named as
the native fields. `accepted` says per text whether its confidence reaches the caller's
threshold; a below-threshold text is answered, never refused, since a generic client cannot
read the native doors' below-threshold details."""
from __future__ import annotations

import importlib.metadata
import json
import math
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
    per_label: bool = False  # shape [N, C] rather than [N]
    uncertainty: bool = False  # left out with return_uncertainty false
    cot: bool = False  # only with return_cot true


OUTPUTS = (
    Output("label", "BYTES"),
    Output("label_id", "INT32"),
    Output("confidence", "FP64"),
    Output("probabilities", "FP64", per_label=True),
    Output("uncertainty_total", "FP64", uncertainty=True),
    Output("uncertainty_aleatoric", "FP64", uncertainty=True),
    Output("uncertainty_epistemic", "FP64", uncertainty=True),
    Output("accepted", "BOOL"),
    Output("cot_length", "INT32", cot=True),
    Output("reasoning", "BYTES", cot=True),  # per text, its evidence as a JSON list of strings
)
_BY_NAME = {o.name: o for o in OUTPUTS}
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
            "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}], "outputs": outputs}


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
    threshold = _number(params, "confidence_threshold", DEFAULT_THRESHOLD)
    if not 0.0 <= threshold <= 1.0:
        raise MalformedTensor(f"parameter confidence_threshold: {threshold} is not between 0 and 1")
    if request.outputs is not None:
        unknown = [n for n in request.outputs if n not in _BY_NAME]
        if unknown:
            raise MalformedTensor(f"unknown output {unknown[0]!r}; this model has {', '.join(_BY_NAME)}")
    wants_cot = _flag(params, "return_cot", False) or any(
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
        with_uncertainty = _flag(request.parameters, "return_uncertainty", True)
        with_cot = _flag(request.parameters, "return_cot", False)
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
        raise MalformedTensor(f"no input: send the texts as input {INPUT!r} (BYTES)")
    if len(inputs) > 1:
        raise MalformedTensor(f"the model takes one input, {INPUT!r}; the request has {len(inputs)}: "
                              f"{[t.name for t in inputs]}")
    tensor = inputs[0]
    if tensor.datatype != "BYTES":
        raise MalformedTensor(f"input {tensor.name!r} has datatype {tensor.datatype!r}; texts are BYTES")
    return tensor


def _texts(tensor: Tensor) -> list[str]:
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(d < 0 for d in shape):
        raise MalformedTensor(f"input {tensor.name!r} has shape {shape}; texts are [N] or [N, 1]")
    if tensor.raw is not None:
        elements: list[Any] = decode_bytes(tensor.raw)
    else:
        elements = _flatten(tensor.elements or [])
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


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise MalformedTensor(f"parameter {name}: {value!r} is not a boolean")


def _number(params: dict[str, Any], name: str, default: float) -> float:
    """A double, an int64 or a string (KServe's gRPC client cannot send a double)."""
    value = params.get(name, default)
    if isinstance(value, bool):
        raise MalformedTensor(f"parameter {name}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MalformedTensor(f"parameter {name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MalformedTensor(f"parameter {name}: {value!r} is not a finite number")
    return number

"""Hostile input in bounded counts, against live servers: schemathesis from the OpenAPI
document, hypothesis-made bytes and protobuf for every gRPC method, and odd text on every
door. Nothing may answer 5xx / INTERNAL, and the server answers normally afterwards."""
from __future__ import annotations

import asyncio
import collections
import json
import math
from typing import Any

import grpc
import pytest
import schemathesis
import websockets
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis.core.result import Err
from schemathesis.errors import InvalidSchema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server.grpc.gen.bet.v1 import inference_pb2 as pb

# Each run is bounded: REST cases per operation and mode, gRPC cases per method.
REST_EXAMPLES = 60
GRPC_EXAMPLES = 100
FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_every_endpoint_answers_within_its_schema(served) -> None:
    """Schema-valid and schema-invalid requests to every operation of the document, /v2
    included: no 5xx, and every answer (status, content type, body, headers) as documented.
    A valid request may still be refused by a rule the schema cannot state (below the
    threshold: 422; an OIP shape that does not count its texts: 400), so that check alone is
    left out. A schema error is a failure: the document invalid for OpenAPI 3.1 (an
    undeclared path parameter, which schemathesis would otherwise make up), an operation
    schemathesis cannot load, or one it cannot send."""
    document = served.http.get("/openapi.json").json()
    schema_errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                     for e in OpenAPIV31SpecValidator(document).iter_errors()]
    schema = schemathesis.openapi.from_url(served.rest_url + "/openapi.json")
    counts: collections.Counter[str] = collections.Counter()
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            schema_errors.append(f"cannot load an operation: {result.err()}")
            continue
        operation = result.ok()
        operations.append(operation.label)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=REST_EXAMPLES, **FUZZ_SETTINGS)
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])
                counts[f"{operation.label} {mode.value}"] += 1

            try:
                run()
            except Unsatisfiable:
                assert mode == schemathesis.GenerationMode.NEGATIVE  # no parameters to get wrong
            except InvalidSchema as error:
                schema_errors.append(f"{operation.label} {mode.value}: {error}")
    print(f"schemathesis: {sum(counts.values())} cases over {len(operations)} operations", dict(counts))
    assert not schema_errors, "\n".join(schema_errors)
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert set(operations) == documented
    assert all(counts[f"{label} positive"] for label in operations), "an operation was never called"
    assert sum(counts.values()) >= 500
    assert served.http.get("/health/ready").status_code == 200


# Any protobuf wire data: a sequence of (field number, wire type, payload) records, some
# valid for the message, some of the wrong type, some truncated.
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


_record = st.tuples(st.integers(1, 20), st.sampled_from([0, 1, 2, 5]), st.binary(max_size=40),
                    st.integers(0, 2**64 - 1))


def _wire(records: list[tuple[int, int, bytes, int]], cut: int) -> bytes:
    data = b""
    for field, kind, payload, number in records:
        data += _varint(field << 3 | kind)
        data += {0: _varint(number), 1: payload[:8].ljust(8, b"\0"), 5: payload[:4].ljust(4, b"\0"),
                 2: _varint(len(payload)) + payload}[kind]
    return data[:cut] if cut else data


_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, 0.5, -0.0])
_options = st.fixed_dictionaries({}, optional={"return_uncertainty": st.booleans(),
                                               "return_cot": st.booleans(),
                                               "confidence_threshold": _floats})
_texts = st.text(max_size=300) | st.sampled_from(["", " ", "\x00", "\u202e", "\U0001F600" * 50])

MESSAGES = {
    "Predict": st.builds(lambda t, o: pb.PredictRequest(text=t, **o), _texts, _options),
    "PredictBatch": st.builds(lambda t, o: pb.PredictBatchRequest(texts=t, **o),
                              st.lists(_texts, max_size=8), _options),
    "GetModelInfo": st.just(pb.GetModelInfoRequest()),
    "ReloadModel": st.builds(lambda v: pb.ReloadModelRequest(version=v), st.text(min_size=1, max_size=30)),
}
RAW = (st.binary(max_size=200)
       | st.builds(_wire, st.lists(_record, max_size=6), st.integers(0, 60))
       | st.one_of(*MESSAGES.values()).map(lambda m: m.SerializeToString()))
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
           grpc.StatusCode.NOT_FOUND}


def _raw_messages(method: str) -> st.SearchStrategy[bytes]:
    well_formed = MESSAGES.get(method, MESSAGES["Predict"]).map(lambda m: m.SerializeToString())
    return well_formed | RAW


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        assert "Traceback" not in (error.details() or "")
        return error.code()


def _fuzz(served, name: str, inputs: st.SearchStrategy[Any], send: Any) -> None:
    """Sends GRPC_EXAMPLES of `inputs`; no answer may be outside ALLOWED, and the server
    answers normally afterwards."""
    seen: collections.Counter[str] = collections.Counter()

    @given(sent=inputs)
    @settings(max_examples=GRPC_EXAMPLES, **FUZZ_SETTINGS)
    def run(sent: Any) -> None:
        code = _code(lambda: send(sent))
        seen[code.name] += 1
        assert code in ALLOWED, code

    run()
    print(f"gRPC {name}: {sum(seen.values())} cases", dict(seen))
    _still_answers(served)


@pytest.mark.parametrize("method", ["Predict", "PredictBatch", "GetModelInfo", "ReloadModel",
                                    "/grpc.health.v1.Health/Check"])
def test_grpc_unary_methods_take_any_bytes(served, method: str) -> None:
    call = served.channel.unary_unary(method if method.startswith("/") else f"/bet.v1.Inference/{method}")
    _fuzz(served, method, _raw_messages(method), lambda raw: call(raw, timeout=30))


def test_undecodable_bytes_are_invalid_argument_on_every_unary_method(served) -> None:
    for method in ("/bet.v1.Inference/GetModelInfo", "/bet.v1.Inference/ReloadModel",
                   "/grpc.health.v1.Health/Check"):
        call = served.channel.unary_unary(method)
        assert _code(lambda: call(b"\xff\xff\xff", timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_stream_takes_any_bytes(served) -> None:
    call = served.channel.stream_stream("/bet.v1.Inference/PredictStream")
    _fuzz(served, "PredictStream", st.lists(_raw_messages("Predict"), max_size=5),
          lambda messages: list(call(iter(messages), timeout=30)))


def test_websocket_takes_any_frames(served) -> None:
    """Random text and binary frames on one socket: each answered in order, never with a
    5xx status, and the socket stays open."""
    frames = st.lists(st.text(max_size=200) | st.binary(max_size=200)
                      | st.builds(json.dumps, st.dictionaries(st.sampled_from(["text", "texts", "return_cot",
                                                                               "confidence_threshold", "x"]),
                                                              st.none() | st.booleans() | _floats | _texts)),
                      min_size=GRPC_EXAMPLES // 3, max_size=GRPC_EXAMPLES, unique_by=repr)
    seen: collections.Counter[str] = collections.Counter()

    @given(sent=frames)
    @settings(max_examples=3, **FUZZ_SETTINGS)
    def run(sent: list[str | bytes]) -> None:
        async def talk() -> list[dict]:
            async with websockets.connect(served.rest_url.replace("http", "ws") + "/v1/stream") as ws:
                for frame in sent:
                    await ws.send(frame)
                return [json.loads(await ws.recv()) for _ in sent]

        for answer in asyncio.run(talk()):
            status = answer.get("status", 200)
            seen[str(status)] += 1
            assert status < 500, answer

    run()
    print(f"WebSocket: {sum(seen.values())} frames", dict(seen))


def _still_answers(served) -> None:
    answer = served.stub.Predict(pb.PredictRequest(text="still here", confidence_threshold=0), timeout=30)
    assert answer.prediction and math.isclose(sum(answer.probabilities.values()), 1, abs_tol=1e-5)
    health = served.channel.unary_unary("/grpc.health.v1.Health/Check",
                                        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    assert health(health_pb2.HealthCheckRequest().SerializeToString(), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING


ODD_TEXTS = {
    "NUL": "before\x00after",
    "right-to-left marks": "\u202edlrow olleh\u202c \u200f\u061c \u05e9\u05dc\u05d5\u05dd",
    "10,000 emoji": "\U0001F600" * 10_000,
    "combining marks": "e" + "\u0301\u0308\u0323" * 3000,
    "zero-width and BOM": "\ufeff\u200b\u200c\u200d word \u2060",
    "private use and noncharacters": "\ue000\uffff\U0010fffd",
}


@pytest.mark.parametrize("name", ODD_TEXTS)
def test_odd_text_is_answered_the_same_on_every_door(served, name: str) -> None:
    text = ODD_TEXTS[name]
    body = {"text": text, "confidence_threshold": 0}
    rest = served.http.post("/v1/predict", json=body)
    assert rest.status_code == 200, rest.text
    grpc_answer = served.stub.Predict(pb.PredictRequest(**body), timeout=30)
    assert grpc_answer.prediction == rest.json()["prediction"]

    async def stream() -> dict:
        async with websockets.connect(served.rest_url.replace("http", "ws") + "/v1/stream",
                                      max_size=None) as ws:
            await ws.send(json.dumps(body))
            return json.loads(await ws.recv())

    assert asyncio.run(stream())["prediction"] == rest.json()["prediction"]


@pytest.mark.parametrize(("raw", "status"), [
    (b'{"text": "lone \\ud800 surrogate"}', 400),  # an escape of no character: not JSON (I-JSON)
    (b'{"texts": ["fine", "\\udfff"]}', 400),
    (b'{"text": "invalid \xff\xfe utf-8"}', 400),  # not UTF-8 on the wire
    (b'{"text": "overlong \xc0\xaf"}', 400),
    (b'{"text": "' + "\U0001F600".encode() * 10_001 + b'"}', 422),  # one emoji over the limit
])
def test_invalid_text_on_the_wire_is_refused_with_the_contract_error(served, raw: bytes, status: int) -> None:
    path = "/v1/predict/batch" if b"texts" in raw else "/v1/predict"
    reply = served.http.post(path, content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == status and set(reply.json()) == {"detail"}
    if status == 400:
        assert reply.json()["detail"] == "the body is not valid JSON"


def test_invalid_utf8_in_a_protobuf_string_is_invalid_argument(served) -> None:
    call = served.channel.unary_unary("/bet.v1.Inference/Predict")
    raw = b"\x0a\x04\xff\xfe\xc0\xaf"  # field 1 (text), 4 bytes that are not UTF-8
    assert _code(lambda: call(raw, timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT

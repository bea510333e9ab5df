"""Malformed Open Inference Protocol requests, sent by hand (httpx, and grpc with the stubs
generated from proto/inference/open_inference_grpc.proto): each is a 400 with {"error": ...}
on REST and INVALID_ARGUMENT on gRPC, never a 500 / INTERNAL; texts the native rules refuse
are 422 on REST. Well-formed requests built the
same way answer as the native door does, so the refusals are of the defect alone. Also the
versioned and unknown paths."""
from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.oip.conftest import TEXTS, Bet

pb = pytest.importorskip("server.grpc.gen.inference.open_inference_grpc_pb2")
pb_grpc = pytest.importorskip("server.grpc.gen.inference.open_inference_grpc_pb2_grpc")

HEADER = "Inference-Header-Content-Length"


def bytes_tensor(*items: bytes) -> bytes:
    """The binary form of a BYTES tensor: each element a 4-byte little-endian length, then it."""
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def text_input(shape: list[int], datatype: str = "BYTES", **extra: Any) -> dict[str, Any]:
    return {"name": "text", "datatype": datatype, "shape": shape, **extra}


def binary_request(header: dict[str, Any], raw: bytes, *, length: str | bytes | None = None) -> dict[str, Any]:
    """httpx.post keywords for a binary-extension body: the JSON header, then `raw`."""
    head = json.dumps(header).encode()
    return {"content": head + raw, "headers": {HEADER: length if length is not None else str(len(head)),
                                               "content-type": "application/octet-stream"}}


def infer_url(model: str = "bet") -> str:
    return f"/v2/models/{model}/infer"


# ---------------------------------------------------------------- REST

ONE = bytes_tensor(TEXTS[0].encode())
REST_MALFORMED: dict[str, dict[str, Any]] = {
    # the binary tensor extension
    "bytes prefix claims more bytes than present": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": 9})]}, struct.pack("<I", 100) + b"hello"),
    "binary_data_size past the end of the body": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE) + 50})]}, ONE),
    "binary_data_size cuts an element short": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE) - 3})]}, ONE),
    "binary elements more than the shape": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": 2 * len(ONE)})]}, ONE + ONE),
    "binary elements fewer than the shape": binary_request(
        {"inputs": [text_input([2], parameters={"binary_data_size": len(ONE)})]}, ONE),
    "binary element not UTF-8": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": 6})]}, bytes_tensor(b"\xff\xfe")),
    "header length past the body": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE)})]}, ONE, length="100000"),
    "header length not a number": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE)})]}, ONE, length="abc"),
    "header length in digits other than 0-9": binary_request(  # latin-1 "²", a digit to str.isdigit
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE)})]}, ONE, length=b"\xb2"),
    "header length negative": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE)})]}, ONE, length="-1"),
    "header length cuts the JSON": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": len(ONE)})]}, ONE, length="10"),
    # shape and data
    "shape [2], one element": {"json": {"inputs": [text_input([2], data=["only one"])]}},
    "shape [3, 1], two elements": {"json": {"inputs": [text_input([3, 1], data=["a", "b"])]}},
    "shape [1, 2] (not [N] or [N, 1])": {"json": {"inputs": [text_input([1, 2], data=["a", "b"])]}},
    "shape with a negative dimension": {"json": {"inputs": [text_input([-1], data=["a"])]}},
    "shape [0], no text": {"json": {"inputs": [text_input([0], data=[])]}},
    # datatype and names
    "datatype FP32 for text": {"json": {"inputs": [text_input([1], datatype="FP32", data=[1.0])]}},
    "datatype FP32 for text, binary": binary_request(
        {"inputs": [text_input([1], datatype="FP32", parameters={"binary_data_size": 4})]}, struct.pack("<f", 1.0)),
    "BYTES data that are numbers": {"json": {"inputs": [text_input([1], data=[1])]}},
    "no inputs": {"json": {"inputs": []}},
    "text given twice": {"json": {"inputs": [text_input([1], data=["a"]), text_input([2], data=["b", "c"])]}},
    "an input besides text": {"json": {"inputs": [text_input([1], data=["a"]),
                                                  {"name": "other", "datatype": "FP32", "shape": [1], "data": [1.0]}]}},
    "unknown requested output": {"json": {"inputs": [text_input([1], data=["a"])], "outputs": [{"name": "nope"}]}},
    # parameters
    "confidence_threshold not a number": {"json": {"inputs": [text_input([1], data=["a"])],
                                                   "parameters": {"confidence_threshold": "abc"}}},
    "confidence_threshold above 1": {"json": {"inputs": [text_input([1], data=["a"])],
                                              "parameters": {"confidence_threshold": 1.5}}},
    "confidence_threshold below 0": {"json": {"inputs": [text_input([1], data=["a"])],
                                              "parameters": {"confidence_threshold": -0.1}}},
    # the body
    "not JSON": {"content": b"{not json", "headers": {"content-type": "application/json"}},
    "JSON, not an object": {"json": [1, 2, 3]},
    "inputs not a list": {"json": {"inputs": {"name": "text"}}},
}


@pytest.mark.parametrize("case", list(REST_MALFORMED))
def test_rest_malformed_is_400(bet: Bet, case: str) -> None:
    reply = bet.http.post(infer_url(), **REST_MALFORMED[case])
    assert reply.status_code == 400, f"{case}: {reply.status_code} {reply.text}"
    body = reply.json()
    assert isinstance(body.get("error"), str) and body["error"], body


# Readable tensors whose texts the native batch refuses (1 to 10,000 characters as sent, not
# all whitespace; 1 to 256 texts): 422 as on the native doors (ADR 0005), in the protocol's
# {"error": ...} body; on gRPC INVALID_ARGUMENT like the malformed ones.
REST_REFUSED_TEXTS: dict[str, dict[str, Any]] = {
    "empty text": {"json": {"inputs": [text_input([1], data=[""])]}},
    "text only whitespace": {"json": {"inputs": [text_input([1], data=["   "])]}},
    "text over 10,000 characters": {"json": {"inputs": [text_input([1], data=["x" * 10_001])]}},
    "257 texts": {"json": {"inputs": [text_input([257], data=["a"] * 257)]}},
    "empty text, binary": binary_request(
        {"inputs": [text_input([1], parameters={"binary_data_size": 4})]}, bytes_tensor(b"")),
}


@pytest.mark.parametrize("case", list(REST_REFUSED_TEXTS))
def test_rest_texts_the_native_rules_refuse_are_422(bet: Bet, case: str) -> None:
    reply = bet.http.post(infer_url(), **REST_REFUSED_TEXTS[case])
    assert reply.status_code == 422, f"{case}: {reply.status_code} {reply.text}"
    body = reply.json()
    assert isinstance(body.get("error"), str) and body["error"], body


def test_rest_well_formed_binary_answers_like_the_native_door(bet: Bet) -> None:
    raw = bytes_tensor(*(t.encode() for t in TEXTS))
    header = {"id": "by-hand", "inputs": [text_input([len(TEXTS)], parameters={"binary_data_size": len(raw)})],
              "outputs": [{"name": "label"}, {"name": "confidence"}]}
    reply = bet.http.post(infer_url(), **binary_request(header, raw))
    assert reply.status_code == 200, reply.text
    body = reply.json()  # outputs asked for without binary_data: JSON
    assert body["id"] == "by-hand" and body["model_name"] == "bet"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == [bet.native(t)["prediction"] for t in TEXTS]
    assert outputs["confidence"]["data"] == pytest.approx([bet.native(t)["confidence"] for t in TEXTS], abs=1e-6)


def test_rest_versions_and_unknown_paths(bet: Bet) -> None:
    version = bet.native(TEXTS[0])["model_version"]
    body = {"inputs": [text_input([1], data=[TEXTS[0]])]}
    assert bet.http.get(f"/v2/models/bet/versions/{version}").json()["versions"] == [version]
    assert bet.http.get(f"/v2/models/bet/versions/{version}/ready").json() == {"name": "bet", "ready": True}
    reply = bet.http.post(f"/v2/models/bet/versions/{version}/infer", json=body)
    assert reply.status_code == 200 and reply.json()["model_version"] == version, reply.text
    for method, path in [("GET", "/v2/models/bet/versions/no-such-version"),
                         ("GET", "/v2/models/bet/versions/no-such-version/ready"),
                         ("POST", "/v2/models/bet/versions/no-such-version/infer"),
                         ("GET", "/v2/models/no-such-model"),
                         ("GET", "/v2/models/no-such-model/ready"),
                         ("POST", "/v2/models/no-such-model/infer")]:
        reply = bet.http.request(method, path, json=body if method == "POST" else None)
        assert reply.status_code == 404, f"{method} {path}: {reply.status_code} {reply.text}"
        assert isinstance(reply.json().get("error"), str), f"{method} {path}: {reply.text}"


def test_rest_health_and_metadata_bodies(bet: Bet) -> None:
    assert bet.http.get("/v2/health/live").json() == {"live": True}
    assert bet.http.get("/v2/health/ready").json() == {"ready": True}
    meta = bet.http.get("/v2").json()
    assert meta["name"] == "bet" and isinstance(meta["extensions"], list), meta


# ---------------------------------------------------------------- gRPC


@pytest.fixture(scope="module")
def stub(bet: Bet) -> Iterator[Any]:
    with grpc.insecure_channel(bet.grpc_target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def grpc_input(shape: list[int], datatype: str = "BYTES", **contents: Any) -> Any:
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype=datatype, shape=shape)
    if contents:
        tensor.contents.CopyFrom(pb.InferTensorContents(**contents))
    return tensor


def grpc_request(*inputs: Any, raw: list[bytes] | None = None, **kw: Any) -> Any:
    return pb.ModelInferRequest(model_name="bet", inputs=list(inputs), raw_input_contents=raw or [], **kw)


GRPC_MALFORMED: dict[str, Any] = {
    "bytes prefix claims more bytes than present": grpc_request(
        grpc_input([1]), raw=[struct.pack("<I", 100) + b"hello"]),
    "raw elements more than the shape": grpc_request(grpc_input([1]), raw=[ONE + ONE]),
    "raw elements fewer than the shape": grpc_request(grpc_input([2]), raw=[ONE]),
    "raw element not UTF-8": grpc_request(grpc_input([1]), raw=[bytes_tensor(b"\xff\xfe")]),
    "shape [2], one bytes_contents": grpc_request(grpc_input([2], bytes_contents=[b"only one"])),
    "shape [3, 1], two bytes_contents": grpc_request(grpc_input([3, 1], bytes_contents=[b"a", b"b"])),
    "shape [1, 2] (not [N] or [N, 1])": grpc_request(grpc_input([1, 2], bytes_contents=[b"a", b"b"])),
    "bytes_contents not UTF-8": grpc_request(grpc_input([1], bytes_contents=[b"\xff\xfe"])),
    "empty text": grpc_request(grpc_input([1], bytes_contents=[b""])),
    "text over 10,000 characters": grpc_request(grpc_input([1], bytes_contents=[b"x" * 10_001])),
    "257 texts": grpc_request(grpc_input([257], bytes_contents=[b"a"] * 257)),
    "datatype FP32 for text": grpc_request(grpc_input([1], datatype="FP32", fp32_contents=[1.0])),
    "datatype FP32 for text, raw": grpc_request(grpc_input([1], datatype="FP32"), raw=[struct.pack("<f", 1.0)]),
    "both raw and contents": grpc_request(grpc_input([1], bytes_contents=[b"a"]), raw=[bytes_tensor(b"a")]),
    "two raw entries for one input": grpc_request(grpc_input([1]), raw=[ONE, ONE]),
    "no data at all": grpc_request(grpc_input([1])),
    "no inputs": grpc_request(),
    "text given twice": grpc_request(grpc_input([1], bytes_contents=[b"a"]), grpc_input([1], bytes_contents=[b"b"])),
    "an input besides text": grpc_request(grpc_input([1], bytes_contents=[b"a"]), pb.ModelInferRequest.InferInputTensor(
        name="other", datatype="FP32", shape=[1], contents=pb.InferTensorContents(fp32_contents=[1.0]))),
    "unknown requested output": grpc_request(
        grpc_input([1], bytes_contents=[b"a"]),
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")]),
    "confidence_threshold not a number": grpc_request(
        grpc_input([1], bytes_contents=[b"a"]),
        parameters={"confidence_threshold": pb.InferParameter(string_param="abc")}),
    "confidence_threshold above 1": grpc_request(
        grpc_input([1], bytes_contents=[b"a"]),
        parameters={"confidence_threshold": pb.InferParameter(double_param=1.5)}),
    "confidence_threshold as a bool": grpc_request(
        grpc_input([1], bytes_contents=[b"a"]),
        parameters={"confidence_threshold": pb.InferParameter(bool_param=True)}),
}


@pytest.mark.parametrize("case", list(GRPC_MALFORMED))
def test_grpc_malformed_is_invalid_argument(stub: Any, case: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(GRPC_MALFORMED[case], timeout=30)
    code = raised.value.code()
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{case}: {code} {raised.value.details()}"
    assert raised.value.details(), case


@pytest.mark.parametrize("form", ["bytes_contents", "raw_input_contents"])
def test_grpc_well_formed_answers_like_the_native_door(bet: Bet, stub: Any, form: str) -> None:
    data = [t.encode() for t in TEXTS]
    if form == "bytes_contents":
        request = grpc_request(grpc_input([len(TEXTS)], bytes_contents=data), id="by-hand")
    else:
        request = grpc_request(grpc_input([len(TEXTS), 1]), raw=[bytes_tensor(*data)], id="by-hand")
    reply = stub.ModelInfer(request, timeout=60)
    assert reply.id == "by-hand" and reply.model_name == "bet"
    assert reply.model_version == bet.native(TEXTS[0])["model_version"]
    names = [o.name for o in reply.outputs]
    i = names.index("confidence")
    if reply.raw_output_contents:
        assert len(reply.raw_output_contents) == len(names)
        confidence = list(struct.unpack(f"<{len(TEXTS)}d", reply.raw_output_contents[i]))
    else:
        confidence = list(reply.outputs[i].contents.fp64_contents)
    assert confidence == pytest.approx([bet.native(t)["confidence"] for t in TEXTS], abs=1e-6)


def test_grpc_stream_answers_a_malformed_request_with_an_error_and_goes_on(stub: Any) -> None:
    good = grpc_request(grpc_input([1], bytes_contents=[TEXTS[0].encode()]), id="good")
    bad = GRPC_MALFORMED["datatype FP32 for text"]
    replies = list(stub.ModelStreamInfer(iter([good, bad, good]), timeout=60))
    assert len(replies) == 3, replies
    assert not replies[0].error_message and replies[0].infer_response.id == "good"
    assert replies[1].error_message, replies[1]
    assert not replies[2].error_message and replies[2].infer_response.id == "good"


def test_grpc_unknown_model_and_version_are_not_found(stub: Any) -> None:
    calls = [
        lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="no-such-model"), timeout=30),
        lambda: stub.ModelReady(pb.ModelReadyRequest(name="no-such-model"), timeout=30),
        lambda: stub.ModelReady(pb.ModelReadyRequest(name="bet", version="no-such-version"), timeout=30),
        lambda: stub.ModelInfer(pb.ModelInferRequest(
            model_name="no-such-model", inputs=[grpc_input([1], bytes_contents=[b"a"])]), timeout=30),
        lambda: stub.ModelInfer(pb.ModelInferRequest(
            model_name="bet", model_version="no-such-version", inputs=[grpc_input([1], bytes_contents=[b"a"])]),
            timeout=30),
    ]
    for i, call in enumerate(calls):
        try:
            reply = call()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, (i, exc.code(), exc.details())
        else:  # ModelReady may answer ready=false instead
            assert isinstance(reply, pb.ModelReadyResponse) and reply.ready is False, (i, reply)


def test_a_single_bytes_input_is_read_whatever_its_name(stub: Any) -> None:
    """The issue's rule: one BYTES input is the texts, whatever a client's model calls it."""
    answer = stub.ModelInfer(pb.ModelInferRequest(model_name="bet", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="texts", datatype="BYTES", shape=[1],
                                              contents=pb.InferTensorContents(bytes_contents=[b"a fine film"]))]),
        timeout=30)
    assert [o.name for o in answer.outputs][:3] == ["label", "label_id", "confidence"]


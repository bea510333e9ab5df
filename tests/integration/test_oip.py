"""The Open Inference Protocol on both doors of one server, from the project's own stubs and
plain HTTP: the numbers are the native doors' own, malformed tensors are refused alike, and
the Guard and the rate limit are the native doors' (one quota per caller). The unmodified
third-party clients are in tests/oip."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from server.core import oip
from server.grpc.gen.inference import open_inference_grpc_pb2 as pb
from server.grpc.gen.inference import open_inference_grpc_pb2_grpc as pb_grpc
from tests import security as sec
from tests.harness import ServerThread, oip_grpc_request, oip_tensors_from_grpc

TEXTS = ["A warm, funny and well acted film.", "Dull and far too long.", "Der Film war eine Katastrophe."]
FLOATS = ("confidence", "uncertainty_total", "uncertainty_aleatoric", "uncertainty_epistemic")


def _infer_body(texts: list[str], **parameters: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
            "parameters": parameters, "model_name": "ignored, as KServe's client sends it"}


def _from_rest(body: dict[str, Any]) -> dict[str, list[Any]]:
    return {o["name"]: o["data"] for o in body["outputs"]}


def _from_grpc(answer: pb.ModelInferResponse) -> dict[str, list[Any]]:
    return {name: values for name, (_, _, values) in oip_tensors_from_grpc(answer).items()}


def test_both_doors_answer_the_native_numbers(served: ServerThread) -> None:
    native = [served.http.post("/v1/predict", json={"text": t, "confidence_threshold": 0}).json() for t in TEXTS]
    rest = served.http.post("/v2/models/bet/infer", json=_infer_body(TEXTS))
    assert rest.status_code == 200, rest.text
    stub = pb_grpc.GRPCInferenceServiceStub(served.channel)
    answers = [_from_rest(rest.json())] + [_from_grpc(stub.ModelInfer(oip_grpc_request(TEXTS, raw=raw), timeout=30))
                                           for raw in (True, False)]
    assert rest.json()["model_version"] == native[0]["model_version"]
    for got in answers:
        assert got["label"] == [n["prediction"] for n in native]
        assert got["label_id"] == [n["label_id"] for n in native]
        for name in FLOATS:
            key = name.removeprefix("uncertainty_")
            want = [n["confidence"] if name == "confidence" else n["uncertainty"][key] for n in native]
            assert got[name] == pytest.approx(want, abs=1e-6)  # answers hold to 1e-6 across batch mates
        assert got["probabilities"] == pytest.approx(
            [n["probabilities"][label] for n in native for label in ("negative", "positive")], abs=1e-6)
        assert got["accepted"] == [n["confidence"] >= 0.5 for n in native]


def test_the_binary_extension_in_and_out(served: ServerThread) -> None:
    raw = oip.encode_bytes(t.encode() for t in TEXTS)
    head = json.dumps({"inputs": [{"name": "text", "shape": [3, 1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "confidence", "parameters": {"binary_data": True}},
                                   {"name": "label"}], "id": "r-1"}).encode()
    reply = served.http.post("/v2/models/bet/infer", content=head + raw,
                             headers={"Inference-Header-Content-Length": str(len(head)),
                                      "content-type": "application/octet-stream"})
    assert reply.status_code == 200, reply.text
    size = int(reply.headers["inference-header-content-length"])
    answer = json.loads(reply.content[:size])
    assert answer["id"] == "r-1" and [o["name"] for o in answer["outputs"]] == ["confidence", "label"]
    confidence = np.frombuffer(reply.content[size:], "<f8").tolist()
    native = [served.http.post("/v1/predict", json={"text": t, "confidence_threshold": 0}).json()["confidence"]
              for t in TEXTS]
    assert confidence == pytest.approx(native, abs=1e-6)
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == 24


@pytest.mark.parametrize("case", ["prefix", "shape", "datatype", "no input", "header length"])
def test_malformed_tensors_are_400_and_invalid_argument(served: ServerThread, case: str) -> None:
    text = b"a text"
    raw = {"prefix": oip.encode_bytes([text])[:-2]}.get(case, oip.encode_bytes([text]))
    shape = [2] if case == "shape" else [1]
    datatype = "FP32" if case == "datatype" else "BYTES"
    inputs = [] if case == "no input" else [{"name": "text", "shape": shape, "datatype": datatype,
                                             "parameters": {"binary_data_size": len(raw)}}]
    head = json.dumps({"inputs": inputs}).encode()
    length = str(len(head) + 1000) if case == "header length" else str(len(head))
    reply = served.http.post("/v2/models/bet/infer", content=head + raw,
                             headers={"Inference-Header-Content-Length": length})
    assert reply.status_code == 400 and reply.json()["error"], reply.text
    if case == "header length":
        return
    request = pb.ModelInferRequest(model_name="bet", raw_input_contents=[raw] if inputs else [])
    if inputs:
        request.inputs.add(name="text", datatype=datatype, shape=shape)
    with pytest.raises(grpc.RpcError) as refused:
        pb_grpc.GRPCInferenceServiceStub(served.channel).ModelInfer(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and refused.value.details()


def test_another_model_or_version_is_404_and_not_found(served: ServerThread) -> None:
    version = served.http.get("/v1/model").json()["version"]
    assert served.http.get(f"/v2/models/bet/versions/{version}/ready").json() == {"name": "bet", "ready": True}
    for path in ("/v2/models/other", f"/v2/models/bet/versions/{version}x/ready", "/v2/models/other/infer"):
        reply = served.http.request("POST" if path.endswith("infer") else "GET", path, json=_infer_body(["a"]))
        assert reply.status_code == 404 and "error" in reply.json(), path
    with pytest.raises(grpc.RpcError) as refused:
        pb_grpc.GRPCInferenceServiceStub(served.channel).ModelMetadata(pb.ModelMetadataRequest(name="other"))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_answers_with_a_body_and_v2_without_a_redirect(served: ServerThread) -> None:
    assert served.http.get("/v2/health/live").json() == {"live": True}
    assert served.http.get("/v2/health/ready").json() == {"ready": True}
    reply = served.http.get("/v2", follow_redirects=False)
    assert reply.status_code == 200 and reply.json()["name"] == "bet"
    metadata = served.http.get("/v2/models/bet").json()
    assert [o["name"] for o in metadata["outputs"]] == [o.name for o in oip.OUTPUTS]


KEY = "oip-reader-key-0123"


@pytest.fixture(scope="module")
def guarded(predictor: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    path: Path = tmp_path_factory.mktemp("oip-auth") / "keys.jsonl"
    sec.write_keys(path, {"reader": (KEY, ["predict"])})
    with ServerThread(predictor, auth_api_keys_file=path, rate_limit_per_second=1, rate_limit_burst=3) as server:
        yield server


def test_infer_needs_credentials_and_shares_the_native_quota(guarded: ServerThread) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(guarded.channel)
    # health and metadata are open, as the native health is
    assert guarded.http.get("/v2/health/ready").status_code == 200
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert guarded.http.get("/v2/models/bet").status_code == 200
    refused = guarded.http.post("/v2/models/bet/infer", json=_infer_body(["a"]))
    assert refused.status_code == 401 and "error" in refused.json()
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(oip_grpc_request(["a"], raw=False), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # burst 3: one native call, one OIP REST and one OIP gRPC empty the bucket
    key = {"x-api-key": KEY}
    assert guarded.http.post("/v1/predict", json={"text": "a", "confidence_threshold": 0}, headers=key).status_code == 200
    assert guarded.http.post("/v2/models/bet/infer", json=_infer_body(["a"]), headers=key).status_code == 200
    stub.ModelInfer(oip_grpc_request(["a"], raw=True), metadata=tuple(key.items()), timeout=10)
    over = guarded.http.post("/v2/models/bet/infer", json=_infer_body(["a"]), headers=key)
    assert over.status_code == 429 and over.headers["retry-after"] and "rate limit" in over.json()["error"]

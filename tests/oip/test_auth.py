"""The Open Inference Protocol behind authentication, and under another model name
(BET_OIP_MODEL_NAME): health and metadata open on both doors, inference needs the `predict`
scope as the native doors do; tritonclient passes an API key as a header / metadata."""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.oip.conftest import TEXTS, Bet, client_python, serve
from tests.security import write_keys

pb = pytest.importorskip("server.grpc.gen.inference.open_inference_grpc_pb2")
pb_grpc = pytest.importorskip("server.grpc.gen.inference.open_inference_grpc_pb2_grpc")

NAME = "sentiment"
PREDICT_KEY, ADMIN_KEY = "predict-key-0123456789abcdef", "admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bet]:
    keys = tmp_path_factory.mktemp("oip-auth") / "api-keys"
    write_keys(keys, {"caller": (PREDICT_KEY, ["predict"]), "operator": (ADMIN_KEY, ["admin"])})
    yield from serve({"BET_AUTH_API_KEYS_FILE": str(keys), "BET_OIP_MODEL_NAME": NAME},
                     headers={"x-api-key": PREDICT_KEY})


@pytest.fixture(scope="module")
def stub(guarded: Bet) -> Iterator[Any]:
    with grpc.insecure_channel(guarded.grpc_target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def body() -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXTS[0]]}]}


def test_rest_health_and_metadata_are_open(guarded: Bet) -> None:
    for path in ["/v2", "/v2/health/live", "/v2/health/ready", f"/v2/models/{NAME}", f"/v2/models/{NAME}/ready"]:
        reply = guarded.http.get(path)
        assert reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text}"
    assert guarded.http.get(f"/v2/models/{NAME}").json()["name"] == NAME


@pytest.mark.parametrize("headers,status", [({}, 401), ({"x-api-key": "wrong"}, 401),
                                            ({"x-api-key": ADMIN_KEY}, 403), ({"x-api-key": PREDICT_KEY}, 200)],
                         ids=["none", "unknown-key", "admin-only", "predict"])
def test_rest_infer_needs_the_predict_scope(guarded: Bet, headers: dict[str, str], status: int) -> None:
    reply = guarded.http.post(f"/v2/models/{NAME}/infer", json=body(), headers=headers)
    assert reply.status_code == status, reply.text
    if status != 200:
        assert isinstance(reply.json().get("error"), str), reply.text
    else:
        assert reply.json()["model_name"] == NAME


def test_the_model_answers_by_its_configured_name_only(guarded: Bet) -> None:
    auth = {"x-api-key": PREDICT_KEY}
    assert guarded.http.get("/v2/models/bet", headers=auth).status_code == 404
    assert guarded.http.post("/v2/models/bet/infer", json=body(), headers=auth).status_code == 404


def test_grpc_health_and_metadata_are_open(stub: Any) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name=NAME), timeout=30).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30).name == "bet"
    assert stub.ModelMetadata(pb.ModelMetadataRequest(name=NAME), timeout=30).name == NAME


def grpc_infer() -> Any:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[TEXTS[0].encode()]))
    return pb.ModelInferRequest(model_name=NAME, inputs=[tensor])


@pytest.mark.parametrize("metadata,code", [((), grpc.StatusCode.UNAUTHENTICATED),
                                           ((("x-api-key", ADMIN_KEY),), grpc.StatusCode.PERMISSION_DENIED),
                                           ((("x-api-key", PREDICT_KEY),), grpc.StatusCode.OK)],
                         ids=["none", "admin-only", "predict"])
def test_grpc_infer_and_stream_need_the_predict_scope(stub: Any, metadata: tuple, code: grpc.StatusCode) -> None:
    try:
        reply = stub.ModelInfer(grpc_infer(), metadata=metadata, timeout=30)
        assert code == grpc.StatusCode.OK and reply.model_name == NAME, reply
    except grpc.RpcError as exc:
        assert exc.code() == code, (exc.code(), exc.details())
    try:
        replies = list(stub.ModelStreamInfer(iter([grpc_infer()]), metadata=metadata, timeout=30))
        assert code == grpc.StatusCode.OK, replies
        assert len(replies) == 1 and not replies[0].error_message, replies
    except grpc.RpcError as exc:
        assert exc.code() == code, ("stream", exc.code(), exc.details())


TRITON_WITH_KEY = """
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
rest, target, name, key = sys.argv[1:]
out = {}
for door, mod, url in (("http", httpclient, rest), ("grpc", grpcclient, target)):
    client = mod.InferenceServerClient(url)
    text = mod.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array(["What a wonderful film!"], dtype=object))
    result = client.infer(name, [text], headers={"x-api-key": key})
    out[door] = result.as_numpy("label").tolist()[0].decode()
    try:
        client.infer(name, [text])
        out[door + "_without"] = "answered"
    except Exception as exc:
        out[door + "_without"] = str(exc)
print(json.dumps(out))
"""


def test_tritonclient_sends_an_api_key(guarded: Bet) -> None:
    python: Path = client_python("tritonclient")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(python), "-c", TRITON_WITH_KEY, guarded.rest_hostport, guarded.grpc_target, NAME,
                           PREDICT_KEY], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["http"] == got["grpc"] == guarded.native("What a wonderful film!")["prediction"], got
    assert "401" in got["http_without"], got
    assert "UNAUTHENTICATED" in got["grpc_without"], got

"""Authentication, scopes, the rate limit and TLS on real servers, every case on both
protocols: the same refusal, the same message, from the one Guard of the core."""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
import websockets
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.grpc.converters import RETRY_AFTER
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests import security as sec
from tests.harness import ServerThread

UNAUTHENTICATED = (401, grpc.StatusCode.UNAUTHENTICATED)
DENIED = (403, grpc.StatusCode.PERMISSION_DENIED)
PREDICT_KEY, ADMIN_KEY, REVOKED_KEY = "predict-key-0123", "admin-key-4567", "soon-revoked-89"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "keys.jsonl"
    sec.write_keys(path, {"reader": (PREDICT_KEY, ["predict"]), "ops": (ADMIN_KEY, ["admin"]),
                          "old": (REVOKED_KEY, ["predict"])})
    return path


@pytest.fixture(scope="module")
def guarded(predictor: Any, keys_file: Path) -> Iterator[ServerThread]:
    with ServerThread(predictor, auth_jwt_secret=sec.SECRET, auth_jwt_issuer=sec.ISSUER,
                      auth_jwt_audience=sec.AUDIENCE, auth_api_keys_file=keys_file,
                      metrics_open=False) as server:
        yield server


def both(server: ServerThread, headers: dict[str, str], *, rest: tuple[str, str] = ("POST", "/v1/predict"),
         rpc: str = "Predict") -> tuple[httpx.Response, grpc.RpcError | Any]:
    """The same call on both doors with the same credentials: (REST reply, gRPC reply or error)."""
    method, path = rest
    body = {"text": "Credentials first.", "confidence_threshold": 0} if path == "/v1/predict" else None
    reply = server.http.request(method, path, json=body, headers=headers)
    request = {"Predict": pb.PredictRequest(text="Credentials first.", confidence_threshold=0),
               "GetModelInfo": pb.GetModelInfoRequest(), "ReloadModel": pb.ReloadModelRequest()}[rpc]
    try:
        answer = getattr(server.stub, rpc)(request, metadata=tuple(headers.items()), timeout=30)
    except grpc.RpcError as error:
        answer = error
    return reply, answer


def assert_refused(server: ServerThread, headers: dict[str, str], wire: tuple[int, grpc.StatusCode],
                   reason: str, **call: Any) -> None:
    reply, error = both(server, headers, **call)
    assert reply.status_code == wire[0], reply.text
    assert isinstance(error, grpc.RpcError) and error.code() == wire[1]
    assert reason in reply.json()["detail"] and error.details() == reply.json()["detail"]


def test_valid_credentials_are_admitted_on_both(guarded: ServerThread) -> None:
    for headers in (sec.bearer(sec.hs256()), {"x-api-key": PREDICT_KEY}):
        reply, answer = both(guarded, headers)
        assert reply.status_code == 200 and isinstance(answer, pb.PredictResponse)
        assert reply.json()["prediction"] == answer.prediction


BAD_TOKENS = {
    "missing": (None, "credentials required"),
    "expired": (lambda: sec.hs256(exp=int(time.time()) - 120), "expired"),
    "not yet valid": (lambda: sec.hs256(nbf=int(time.time()) + 120), "not valid yet"),
    "wrong issuer": (lambda: sec.hs256(iss="https://evil.test"), "issuer"),
    "wrong audience": (lambda: sec.hs256(aud="someone-else"), "audience"),
    "wrong signature": (lambda: jwt.encode(sec.claims(), "another-secret-" * 4, algorithm="HS256"), "signature"),
    "alg none": (lambda: sec.unsigned(), "algorithm"),
    "unexpected algorithm": (lambda: jwt.encode(sec.claims(), sec.SECRET * 2, algorithm="HS384"), "algorithm"),
    "garbage": (lambda: "abc.def", "not a JWT"),
    "unknown API key": ("key:nope", "API key is not valid"),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_bad_credentials_are_401_and_unauthenticated(guarded: ServerThread, case: str) -> None:
    make, reason = BAD_TOKENS[case]
    if make is None:
        headers = {}
    elif isinstance(make, str):
        headers = {"x-api-key": make.removeprefix("key:")}
    else:
        headers = sec.bearer(make())
    assert_refused(guarded, headers, UNAUTHENTICATED, reason)


def test_streams_need_credentials_too(guarded: ServerThread) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(guarded.stub.PredictStream(iter([pb.PredictRequest(text="hi")])))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ws_url = guarded.rest_url.replace("http", "ws") + "/v1/stream"

    async def refused() -> int:
        with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
            async with websockets.connect(ws_url):
                pass
        return caught.value.response.status_code

    assert asyncio.run(refused()) == 401

    async def admitted() -> dict:
        async with websockets.connect(ws_url, additional_headers={"x-api-key": PREDICT_KEY}) as ws:
            await ws.send(json.dumps({"text": "streamed", "confidence_threshold": 0}))
            return json.loads(await ws.recv())

    assert "prediction" in asyncio.run(admitted())


def test_wrong_scope_is_403_and_permission_denied(guarded: ServerThread) -> None:
    admin_only = sec.bearer(sec.hs256(scope="admin"))
    assert_refused(guarded, admin_only, DENIED, "'predict' scope")
    assert_refused(guarded, {"x-api-key": ADMIN_KEY}, DENIED, "'predict' scope",
                   rest=("GET", "/v1/model"), rpc="GetModelInfo")
    # administration needs admin: a predict-only caller is refused before the call runs
    assert_refused(guarded, sec.bearer(sec.hs256()), DENIED, "'admin' scope",
                   rest=("POST", "/v1/admin/reload"), rpc="ReloadModel")
    assert_refused(guarded, {"x-api-key": PREDICT_KEY}, DENIED, "'admin' scope",
                   rest=("POST", "/v1/admin/reload"), rpc="ReloadModel")


def test_the_admin_scope_reloads_on_both_doors(guarded: ServerThread) -> None:
    for headers in ({"x-api-key": ADMIN_KEY}, sec.bearer(sec.hs256(scope="admin"))):
        reply, answer = both(guarded, headers, rest=("POST", "/v1/admin/reload"), rpc="ReloadModel")
        assert reply.status_code == 200, reply.text
        assert isinstance(answer, pb.ReloadModelResponse) and answer.model.version == reply.json()["model"]["version"]


def test_revoked_api_key_is_refused_without_restart(guarded: ServerThread, keys_file: Path) -> None:
    reply, answer = both(guarded, {"x-api-key": REVOKED_KEY})
    assert reply.status_code == 200 and isinstance(answer, pb.PredictResponse)
    kept = [line for line in keys_file.read_text().splitlines() if '"old"' not in line]
    keys_file.write_text("\n".join(kept) + "\n")
    os.utime(keys_file, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime, whatever the clock
    assert_refused(guarded, {"x-api-key": REVOKED_KEY}, UNAUTHENTICATED, "API key is not valid")
    assert both(guarded, {"x-api-key": PREDICT_KEY})[0].status_code == 200  # others unaffected


def test_bet_predict_sends_credentials(guarded: ServerThread, capsys: pytest.CaptureFixture) -> None:
    from server import cli

    for where in (["--url", guarded.rest_url], ["--grpc", guarded.grpc_target]):
        assert cli.main(["predict", "hello", *where]) == 1
        assert "credentials required" in json.loads(capsys.readouterr().out)["detail"]
        for sent in (["--api-key", PREDICT_KEY], ["--token", sec.hs256()]):
            assert cli.main(["predict", "hello", *where, *sent]) == 0
            assert json.loads(capsys.readouterr().out)["prediction"]


def test_health_reflection_and_docs_need_no_credentials(guarded: ServerThread) -> None:
    for path in ("/health/live", "/health/ready", "/openapi.json", "/docs"):
        assert guarded.http.get(path).status_code == 200, path
    health = health_pb2_grpc.HealthStub(guarded.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(guarded.channel)
    [listing] = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=10)
    assert "bet.v1.Inference" in {s.name for s in listing.list_services_response.service}


def test_closed_metrics_need_the_admin_scope(guarded: ServerThread) -> None:
    assert guarded.http.get("/metrics").status_code == 401
    assert guarded.http.get("/metrics", headers={"x-api-key": PREDICT_KEY}).status_code == 403
    reply = guarded.http.get("/metrics", headers={"x-api-key": ADMIN_KEY})
    assert reply.status_code == 200
    assert 'outcome="unauthenticated"' in reply.text and 'outcome="permission_denied"' in reply.text


LIMITED_KEYS = {name: (f"{name}-key-for-limits", ["predict"]) for name in ("first", "second", "streamer", "grpc-streamer")}


@pytest.fixture(scope="module")
def limited(predictor: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    path = tmp_path_factory.mktemp("limits") / "keys.jsonl"
    sec.write_keys(path, LIMITED_KEYS)  # one caller per test: each starts with a full bucket
    with ServerThread(predictor, auth_api_keys_file=path, rate_limit_per_second=1,
                      rate_limit_burst=3) as server:
        yield server


def _model_info_both(server: ServerThread, key: str) -> tuple[int, grpc.StatusCode]:
    reply = server.http.get("/v1/model", headers={"x-api-key": key})
    try:
        server.stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=(("x-api-key", key),), timeout=10)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
    return reply.status_code, code


def test_rate_limit_is_one_bucket_for_both_doors_and_recovers(limited: ServerThread) -> None:
    key = {"x-api-key": LIMITED_KEYS["first"][0]}
    for _ in range(5):  # refused credentials spend nobody's quota
        assert limited.http.get("/v1/model", headers={"x-api-key": "wrong"}).status_code == 401
    # burst 3: two over REST and one over gRPC empty the bucket; the next is refused on both
    assert limited.http.get("/v1/model", headers=key).status_code == 200
    assert _model_info_both(limited, key["x-api-key"]) == (200, grpc.StatusCode.OK)
    refused = limited.http.get("/v1/model", headers=key)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "rate limit" in refused.json()["detail"]
    with pytest.raises(grpc.RpcError) as caught:
        limited.stub.Predict(pb.PredictRequest(text="over"), metadata=tuple(key.items()), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(caught.value.trailing_metadata())[RETRY_AFTER] == "1"
    assert caught.value.details() == refused.json()["detail"]
    # another caller has its own bucket
    assert limited.http.get("/v1/model", headers={"x-api-key": LIMITED_KEYS["second"][0]}).status_code == 200
    time.sleep(2.1)  # two tokens back: one for each door
    assert _model_info_both(limited, key["x-api-key"]) == (200, grpc.StatusCode.OK)
    assert "bet_rate_limited_total 2.0" in limited.http.get("/metrics").text


def test_each_stream_message_is_charged(limited: ServerThread) -> None:
    ws_url = limited.rest_url.replace("http", "ws") + "/v1/stream"

    async def frames() -> list[dict]:
        key = LIMITED_KEYS["streamer"][0]
        async with websockets.connect(ws_url, additional_headers={"x-api-key": key}) as ws:
            for i in range(4):
                await ws.send(json.dumps({"text": f"message {i}", "confidence_threshold": 0}))
            return [json.loads(await ws.recv()) for _ in range(4)]

    answers = asyncio.run(frames())
    assert ["prediction" in a for a in answers[:3]] == [True] * 3
    assert answers[3]["status"] == 429 and "rate limit" in answers[3]["detail"]

    metadata = (("x-api-key", LIMITED_KEYS["grpc-streamer"][0]),)
    requests = [pb.PredictRequest(text=f"message {i}", confidence_threshold=0) for i in range(4)]
    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for reply in limited.stub.PredictStream(iter(requests), metadata=metadata, timeout=30):
            received.append(reply)
    assert len(received) == 3 and caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_without_authentication_a_caller_is_its_address_on_both_doors(predictor: Any) -> None:
    with ServerThread(predictor, rate_limit_per_second=0.5, rate_limit_burst=2) as server:
        assert server.http.get("/v1/model").status_code == 200
        server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)  # 127.0.0.1 on gRPC too
        assert server.http.get("/v1/model").status_code == 429
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert server.http.get("/health/ready").status_code == 200  # health is never limited


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[sec.Pki, sec.Pki]:
    folder = tmp_path_factory.mktemp("tls")
    return sec.make_pki(folder, "right"), sec.make_pki(folder, "other")


def test_tls_on_both_doors_with_and_without_the_right_ca(predictor: Any, pki: tuple[sec.Pki, sec.Pki]) -> None:
    right, other = pki
    with ServerThread(predictor, tls_cert_file=right.cert_file, tls_key_file=right.key_file) as server:
        assert server.rest_url.startswith("https://")
        trusted = ssl.create_default_context(cadata=right.ca_pem.decode())
        reply = httpx.get(server.rest_url + "/health/ready", verify=trusted, timeout=10)
        assert reply.status_code == 200
        untrusted = ssl.create_default_context(cadata=other.ca_pem.decode())
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.rest_url + "/health/ready", verify=untrusted, timeout=10)
        with pytest.raises(httpx.HTTPError):  # plain HTTP to a TLS port gets nothing useful
            reply = httpx.get(server.rest_url.replace("https", "http") + "/health/ready", timeout=5)
            reply.raise_for_status()

        def call(ca: bytes) -> Any:
            with grpc.secure_channel(server.grpc_target, grpc.ssl_channel_credentials(ca)) as channel:
                return pb_grpc.InferenceStub(channel).Predict(
                    pb.PredictRequest(text="over TLS", confidence_threshold=0), timeout=10)

        assert call(right.ca_pem).prediction
        (ca_file := right.cert_file.parent / "right-ca.pem").write_bytes(right.ca_pem)
        from server import cli

        for where in (["--url", server.rest_url], ["--grpc", server.grpc_target]):
            assert cli.main(["predict", "over TLS", *where, "--ca-file", str(ca_file)]) == 0
        with pytest.raises(grpc.RpcError) as caught:
            call(other.ca_pem)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

"""Fast no's (server/core/overload.py) on real servers: under overload a prediction is
refused by the HTTP protocol and the gRPC call wrapper before its body is read, with the
error table's answer; a connection that sends again at once is paced; credentials and CORS
still come first where their answers differ."""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.core.schemas import MAX_BATCH_TEXTS
from server.grpc.converters import RETRY_AFTER
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from tests import security
from tests.harness import Gated, ServerThread

PACE_S = 0.3
ORIGIN = "http://127.0.0.1:8766"
KEY = "fast-no-key-0123"


@contextmanager
def overloaded(predictor: Any, **settings: Any) -> Iterator[tuple[ServerThread, Gated]]:
    """A server whose queue is full: one text computing behind a closed gate and the queue
    filled to its limit, so that every prediction is refused until the gate opens."""
    gated = Gated(predictor)
    settings = {"max_batch_size": 1, "max_queue": MAX_BATCH_TEXTS, "admission_budget_ms": 0,
                "refusal_pace_ms": PACE_S * 1000,
                # the kept-alive connection waits out the queue's drain, longer on a busy machine
                "keep_alive_timeout_s": 120} | settings
    with ServerThread(gated, **settings) as server:
        headers = {"x-api-key": KEY} if "auth_api_keys_file" in settings else {}
        gated.gate.clear()
        gated.entered.clear()
        post = lambda path, body: httpx.post(server.rest_url + path, json=body, headers=headers, timeout=60)  # noqa: E731
        holder = threading.Thread(target=post, args=("/v1/predict", {"text": "holder", "confidence_threshold": 0}))
        holder.start()
        assert gated.entered.wait(10)
        filler = threading.Thread(target=post, args=("/v1/predict/batch", {
            "texts": [f"t{i}" for i in range(MAX_BATCH_TEXTS)], "confidence_threshold": 0}))
        filler.start()
        deadline = time.monotonic() + 10
        while f"bet_queue_depth {float(MAX_BATCH_TEXTS)}" not in server.http.get("/metrics", headers=headers).text:
            assert time.monotonic() < deadline, "the queue never filled"
            time.sleep(0.01)
        try:
            yield server, gated
        finally:
            gated.gate.set()
            holder.join(30)
            filler.join(30)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes,
          **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("POST", path, body, {"content-type": "application/json", **headers})
    reply = conn.getresponse()
    return reply, reply.read()


def _refused_count(server: ServerThread, protocol: str, method: str) -> float:
    wanted = f'bet_requests_total{{method="{method}",outcome="overloaded",protocol="{protocol}"}} '
    for line in server.http.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


def test_rest_refusal_comes_from_the_protocol_paced_on_its_connection(predictor: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="bet.request")
    with overloaded(predictor) as (server, gated):
        host, port = server.rest_url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        sent = time.monotonic()  # before the refusal; the reply may be read late (one GIL)
        reply, body = _post(conn, "/v1/predict", b'{"text": "refused"}', **{"x-request-id": "fast-no-1"})
        assert reply.status == 503 and reply.getheader("retry-after") == "1"
        assert reply.getheader("x-request-id") == "fast-no-1"
        assert reply.getheader("content-type") == "application/json"
        assert reply.getheader("date") and "full" in json.loads(body)["detail"]
        # refused before the body is read: not JSON makes no difference; paced: the same
        # connection's next answer comes no sooner than the pace after the refusal
        reply, body = _post(conn, "/v1/predict", b"{not json")
        assert reply.status == 503 and "full" in json.loads(body)["detail"]
        assert time.monotonic() - sent >= PACE_S
        assert reply.getheader("x-request-id")  # a fresh id when none was sent
        reply, body = _post(conn, "/v2/models/bet/infer", b"{}")
        assert reply.status == 503 and "full" in json.loads(body)["error"]  # the protocol's body
        assert _refused_count(server, "rest", "POST /v1/predict") == 2
        assert _refused_count(server, "rest", "POST /v2/models/{model}/infer") == 1
        time.sleep(1.2)  # one log line a second for all refusals, not one each
        summaries = [r for r in caplog.records if r.getMessage() == "requests refused"]
        assert sum(r.fields["count"] for r in summaries if r.fields["method"] == "POST /v1/predict") == 2
        gated.gate.set()
        deadline = time.monotonic() + 30
        while "bet_queue_depth 0.0" not in server.http.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        reply, body = _post(conn, "/v1/predict", b'{"text": "answered", "confidence_threshold": 0}')
        assert reply.status == 200 and json.loads(body)["prediction"]  # the connection kept alive
        conn.close()


def test_refusal_of_a_closing_request_closes_the_connection(predictor: Any) -> None:
    with overloaded(predictor) as (server, _):
        host, port = server.rest_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            body = b'{"text": "refused"}'
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                         b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ") and b"connection: close" in head.lower()
        assert "full" in json.loads(rest)["detail"]


def _read_replies(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """`count` HTTP/1.1 answers with a content-length: each one's head and body."""
    received, replies = b"", []
    while len(replies) < count:
        received += sock.recv(65536)
        while b"\r\n\r\n" in received:
            head, _, rest = received.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            if len(rest) < length:
                break
            replies.append((head, rest[:length]))
            received = rest[length:]
    return replies


def test_the_pace_holds_for_a_request_read_with_the_refused_body(predictor: Any) -> None:
    """A client that sends headers and body apart (as http.client and h11 do) gets its refusal
    before the body is read; the body and its next request then arrive in one read. The
    next request still waits out the pace, and every answer comes in order."""
    with overloaded(predictor) as (server, _):
        host, port = server.rest_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            body = b'{"text": "refused"}'
            head = b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" \
                   b"content-length: %d\r\n\r\n" % len(body)
            sent = time.monotonic()  # before the refusal; the reply may be read late (one GIL)
            sock.sendall(head)
            [(first, _)] = _read_replies(sock, 1)
            assert first.startswith(b"HTTP/1.1 503 ")
            sock.sendall(body + head + body + b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
            (second, text), (third, _) = _read_replies(sock, 2)
            assert time.monotonic() - sent >= PACE_S
            assert second.startswith(b"HTTP/1.1 503 ") and "full" in json.loads(text)["detail"]
            assert third.startswith(b"HTTP/1.1 200 ")  # the pipelined request after it, answered


def test_grpc_refusal_comes_before_the_message_is_read(predictor: Any) -> None:
    with overloaded(predictor) as (server, _):
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Predict(pb.PredictRequest(text="refused"), metadata=[("x-request-id", "fast-grpc-1")],
                                timeout=10)
        error = caught.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "full" in error.details()
        assert dict(error.initial_metadata())["x-request-id"] == "fast-grpc-1"
        assert dict(error.trailing_metadata())[RETRY_AFTER] == "1"
        retry = error_details_pb2.RetryInfo()
        assert any(d.Unpack(retry) for d in rpc_status.from_call(error).details)
        assert retry.retry_delay.seconds == 1
        # the request is not read: bytes that are no PredictRequest are refused the same way
        raw = server.channel.unary_unary("/bet.v1.Inference/PredictBatch")
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff\xff", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _refused_count(server, "grpc", "Predict") == 1
        assert _refused_count(server, "grpc", "PredictBatch") == 1


@pytest.fixture()
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.jsonl"
    security.write_keys(path, {"reader": (KEY, ["predict"])})
    return path


def test_credentials_and_cors_come_before_the_fast_no(predictor: Any, keys: Path) -> None:
    with overloaded(predictor, auth_api_keys_file=keys, cors_origins=ORIGIN) as (server, _):
        body = {"text": "refused", "confidence_threshold": 0}
        assert server.http.post("/v1/predict", json=body).status_code == 401
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Predict(pb.PredictRequest(text="refused"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = server.http.post("/v1/predict", json=body, headers={"x-api-key": KEY})
        assert reply.status_code == 503 and "full" in reply.json()["detail"]
        with pytest.raises(grpc.RpcError) as caught:
            server.stub.Predict(pb.PredictRequest(text="refused"), metadata=[("x-api-key", KEY)], timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # a page's call: refused by the app, with the CORS headers its page needs to read it
        reply = server.http.post("/v1/predict", json=body, headers={"x-api-key": KEY, "origin": ORIGIN})
        assert reply.status_code == 503 and reply.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in reply.headers["access-control-expose-headers"].lower()


def test_the_admission_budget_refuses_by_expected_wait_on_both_doors(predictor: Any) -> None:
    gated = Gated(predictor)
    with ServerThread(gated, max_batch_size=1, admission_budget_ms=1) as server:
        gated.gate.clear()
        holder = threading.Thread(target=server.http.post, args=("/v1/predict",),
                                  kwargs={"json": {"text": "holder", "confidence_threshold": 0}})
        holder.start()
        try:
            assert gated.entered.wait(10)
            # a full batch behind the held text (admitted while the queue was empty, or itself
            # refused): at any throughput a CPU reaches, a text after it waits over 1 ms
            server.http.post("/v1/predict/batch", json={"texts": ["x"] * MAX_BATCH_TEXTS}, timeout=0.5)
        except httpx.TimeoutException:
            pass
        try:
            reply = server.http.post("/v1/predict", json={"text": "refused", "confidence_threshold": 0})
            assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
            assert "over the admission budget (1 ms)" in reply.json()["detail"]
            with pytest.raises(grpc.RpcError) as caught:
                server.stub.Predict(pb.PredictRequest(text="refused"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "over the admission budget" in caught.value.details()
        finally:
            gated.gate.set()
            holder.join(30)

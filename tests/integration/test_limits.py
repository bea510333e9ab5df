"""Size and time limits: bodies and messages over their caps, slow bodies, idle streams and
connections, on a server with small limits so that each case is cheap."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import websockets

from server.grpc.gen.bet.v1 import inference_pb2 as pb
from tests.harness import ServerThread

LIMITS = dict(max_request_bytes=4096, max_stream_message_bytes=2048, header_timeout_s=0.5, body_timeout_s=0.5,
              stream_idle_timeout_s=0.5, keep_alive_timeout_s=1)


@pytest.fixture(scope="module")
def small(predictor: Any) -> Iterator[ServerThread]:
    with ServerThread(predictor, **LIMITS) as server:
        yield server


def _connect(server: ServerThread) -> socket.socket:
    host, port = server.rest_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_slow_body_is_408_and_holds_nobody_up(small: ServerThread) -> None:
    sock = _connect(small)
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"text\": ")
    started = time.monotonic()
    # meanwhile others are answered: a slow client holds a connection, not a worker
    reply = small.http.post("/v1/predict", json={"text": "not held up", "confidence_threshold": 0})
    assert reply.status_code == 200 and time.monotonic() - started < 0.5
    head = _read_response(sock)
    assert head.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5
    sock.close()


@pytest.mark.parametrize("head", [b"", b"GET /health/li", b"GET /health/live HTTP/1.1\r\nHost: t\r\n"])
def test_slow_request_heads_are_408_and_closed(small: ServerThread, head: bytes) -> None:
    sock = _connect(small)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")  # a first request, kept alive
    assert _read_response(sock).startswith(b"HTTP/1.1 200")
    if head:
        sock.sendall(head)  # then the next one's head, never finished
    else:
        sock.close()
        sock = _connect(small)  # or a fresh connection that says nothing
    started = time.monotonic()
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    assert time.monotonic() - started < 5
    if head:
        assert b"HTTP/1.1 408" in answer
    sock.close()


def test_idle_keep_alive_connections_are_closed(small: ServerThread) -> None:
    sock = _connect(small)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
    assert _read_response(sock).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    sock.settimeout(10)
    while sock.recv(65536):  # the rest of the answer, then the server's close
        pass
    assert time.monotonic() - started < 5
    sock.close()


def test_bodies_and_messages_over_their_caps(small: ServerThread) -> None:
    big = json.dumps({"text": "x" * 5000})
    reply = small.http.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "exceeds 4096" in reply.json()["detail"]
    with pytest.raises(grpc.RpcError) as caught:
        small.stub.Predict(pb.PredictRequest(text="x" * 5000), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit is 4096" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:  # grpc's own cap, twice ours: still no INTERNAL
        small.stub.Predict(pb.PredictRequest(text="x" * 9000), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # a stream's message has its own, smaller cap; the same text passes as a single call
    text = "y" * 3000
    assert small.stub.Predict(pb.PredictRequest(text=text, confidence_threshold=0), timeout=30).prediction
    with pytest.raises(grpc.RpcError) as caught:
        list(small.stub.PredictStream(iter([pb.PredictRequest(text=text)]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit is 2048" in caught.value.details()


def _ws_url(server: ServerThread) -> str:
    return server.rest_url.replace("http", "ws") + "/v1/stream"


def test_websocket_message_cap_closes_the_socket(small: ServerThread) -> None:
    async def run() -> int:
        async with websockets.connect(_ws_url(small), max_size=None) as ws:
            await ws.send(json.dumps({"text": "z" * 3000}))
            with pytest.raises(websockets.exceptions.ConnectionClosed) as caught:
                await ws.recv()
            return caught.value.rcvd.code

    assert asyncio.run(run()) == 1009  # message too big


def test_idle_streams_end_on_both(small: ServerThread) -> None:
    async def ws_run() -> tuple[dict, dict, int]:
        async with websockets.connect(_ws_url(small)) as ws:
            await ws.send(json.dumps({"text": "one, then silence", "confidence_threshold": 0}))
            answer = json.loads(await ws.recv())
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            with pytest.raises(websockets.exceptions.ConnectionClosedOK) as caught:
                await asyncio.wait_for(ws.recv(), 5)
            return answer, frame, caught.value.rcvd.code

    answer, frame, code = asyncio.run(ws_run())
    assert "prediction" in answer and code == 1000
    assert frame["status"] == 504 and "idle" in frame["detail"]

    def requests() -> Iterator[pb.PredictRequest]:
        yield pb.PredictRequest(text="one, then silence", confidence_threshold=0)
        time.sleep(2)

    received = []
    with pytest.raises(grpc.RpcError) as caught:
        for reply in small.stub.PredictStream(requests(), timeout=10):
            received.append(reply)
    assert len(received) == 1
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "idle" in caught.value.details()

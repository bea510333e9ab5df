"""Each typed error on its condition, from a real server over both transports; retries only
where the server asked for them (tiny local servers that answer 503 / UNAVAILABLE or 429 /
RESOURCE_EXHAUSTED on purpose); timeouts on the client's clock."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bet_client import (
    NO_RETRY,
    AsyncClient,
    Client,
    DeadlineExceededError,
    InvalidArgumentError,
    LowConfidenceError,
    PredictBatchResponse,
    PredictResponse,
    RateLimitedError,
    RetryPolicy,
    UnavailableError,
)
from bet_client.gen.bet.v1 import inference_pb2 as pb
from bet_client.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from tests.clients.conftest import address_of
from tests.compare import assert_close
from tests.harness import Gated, ServerThread

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01)
TEXT = "It was a film."


@pytest.mark.parametrize(("call", "field"), [
    (lambda c: c.predict("   "), "text"),
    (lambda c: c.predict("ok", confidence_threshold=1.5), "confidence_threshold"),
    (lambda c: c.predict_batch([]), "texts"),
    (lambda c: c.predict_batch(["fine", ""]), "texts.1"),
])
def test_invalid_input(served, call: Any, field: str) -> None:
    details = []
    for transport in ("grpc", "rest"):
        with Client(address_of(served, transport), transport) as client:
            with pytest.raises(InvalidArgumentError) as caught:
                call(client)
            assert field in caught.value.detail
            details.append(caught.value.detail)
    assert details[0] == details[1]  # one message, both transports


def test_low_confidence_carries_the_prediction(served, transport: str) -> None:
    with Client(address_of(served, transport), transport) as client:
        expected = client.predict(TEXT, confidence_threshold=0.0)
        with pytest.raises(LowConfidenceError) as caught:
            client.predict(TEXT, confidence_threshold=1.0)
        assert isinstance(caught.value.prediction, PredictResponse)
        assert_close(caught.value.prediction.model_dump(), expected.model_dump())
        assert "below the threshold" in caught.value.detail

        with pytest.raises(LowConfidenceError) as caught:
            client.predict_batch([TEXT, "Loved it."], confidence_threshold=1.0)
        assert isinstance(caught.value.prediction, PredictBatchResponse)
        assert len(caught.value.prediction.predictions) == 2


def test_stream_answers_then_raises_the_first_error(served, transport: str) -> None:
    with Client(address_of(served, transport), transport) as client:
        answers = client.stream(["Loved it.", "  ", "never sent"])
        assert isinstance(next(answers), PredictResponse)
        with pytest.raises(InvalidArgumentError):
            next(answers)


async def test_async_errors(served, transport: str) -> None:
    async with AsyncClient(address_of(served, transport), transport) as client:
        with pytest.raises(InvalidArgumentError):
            await client.predict("")
        with pytest.raises(LowConfidenceError) as caught:
            await client.predict(TEXT, confidence_threshold=1.0)
        assert caught.value.prediction.prediction


# --- retries: local servers that refuse on purpose -------------------------------------

class _Script:
    """What a stub answers, call after call: (status or code, retry-after seconds), then OK."""

    def __init__(self, refusals: list[tuple[Any, float | None]]) -> None:
        self.refusals = list(refusals)
        self.calls = 0
        self.lock = threading.Lock()

    def next(self) -> tuple[Any, float | None] | None:
        with self.lock:
            self.calls += 1
            return self.refusals.pop(0) if self.refusals else None


ANSWER = {"prediction": "positive", "label_id": 1, "confidence": 0.9,
          "probabilities": {"negative": 0.1, "positive": 0.9}, "model_version": "stub"}


@pytest.fixture
def rest_stub() -> Iterator[tuple[str, _Script]]:
    script = _Script([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            refusal = script.next()
            status, retry_after = refusal or (200, None)
            body = ANSWER if status == 200 else {"detail": f"refused with {status}"}
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if retry_after is not None:
                self.send_header("retry-after", str(retry_after))
            data = json.dumps(body).encode()
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", script
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_stub() -> Iterator[tuple[str, _Script]]:
    script = _Script([])

    class Servicer(pb_grpc.InferenceServicer):
        def Predict(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
            refusal = script.next()
            if refusal is None:
                return pb.PredictResponse(**ANSWER)
            code, retry_after = refusal
            details = []
            if retry_after is not None:
                packed = any_pb2.Any()
                packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
                    seconds=int(retry_after), nanos=int(retry_after % 1 * 1e9))))
                details.append(packed)
            context.abort_with_status(rpc_status.to_status(
                status_pb2.Status(code=code.value[0], message=f"refused with {code.name}", details=details)))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_InferenceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", script
    server.stop(None)


def _stub(request: pytest.FixtureRequest, transport: str) -> tuple[str, _Script]:
    return request.getfixturevalue(f"{transport}_stub")


UNAVAILABLE = {"rest": 503, "grpc": grpc.StatusCode.UNAVAILABLE}
RATE_LIMITED = {"rest": 429, "grpc": grpc.StatusCode.RESOURCE_EXHAUSTED}
INVALID = {"rest": 422, "grpc": grpc.StatusCode.INVALID_ARGUMENT}


def test_retries_until_the_server_takes_the_call(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(UNAVAILABLE[transport], 0), (UNAVAILABLE[transport], None)]
    with Client(address, transport, retry=FAST) as client:
        assert client.predict("x").model_version == "stub"
    assert script.calls == 3


def test_gives_up_after_max_attempts(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(UNAVAILABLE[transport], 0)] * 5
    with Client(address, transport, retry=FAST) as client, pytest.raises(UnavailableError) as caught:
        client.predict("x")
    assert script.calls == 3 and caught.value.retry_after == 0


def test_honours_retry_after(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(RATE_LIMITED[transport], 0.3)] * 2
    started = time.monotonic()
    with Client(address, transport, retry=FAST) as client:
        client.predict("x")
    assert script.calls == 3 and time.monotonic() - started >= 0.6


def test_rate_limited_error_carries_the_delay(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(RATE_LIMITED[transport], 2.5)]
    with Client(address, transport, retry=NO_RETRY) as client, pytest.raises(RateLimitedError) as caught:
        client.predict("x")
    assert caught.value.retry_after == 2.5 and script.calls == 1


def test_no_retry_when_the_wait_passes_the_deadline(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(UNAVAILABLE[transport], 5)] * 2
    with Client(address, transport, retry=FAST, timeout=1) as client, pytest.raises(UnavailableError):
        client.predict("x")
    assert script.calls == 1


def test_never_retries_invalid_input(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(INVALID[transport], 0)] * 3
    with Client(address, transport, retry=FAST) as client, pytest.raises(InvalidArgumentError):
        client.predict("x")
    assert script.calls == 1


async def test_async_retries(request, transport: str) -> None:
    address, script = _stub(request, transport)
    script.refusals = [(UNAVAILABLE[transport], 0), (RATE_LIMITED[transport], 0)]
    async with AsyncClient(address, transport, retry=FAST) as client:
        assert (await client.predict("x")).model_version == "stub"
    assert script.calls == 3


def test_no_server_is_unavailable(transport: str) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"127.0.0.1:{port}", transport, retry=FAST, timeout=5) as client:
        with pytest.raises(UnavailableError):
            client.predict("x")


# --- timeouts: a real server whose model is held ---------------------------------------

@pytest.fixture(scope="module")
def held(predictor: Any) -> Iterator[tuple[ServerThread, Gated]]:
    gated = Gated(predictor)
    with ServerThread(gated) as server:
        yield server, gated


def test_timeouts_fire(held: tuple[ServerThread, Gated], transport: str) -> None:
    server, gate = held[0], held[1].gate
    gate.clear()
    try:
        with Client(address_of(server, transport), transport, timeout=30) as client:
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                client.predict("held at the gate", timeout=0.3)
            assert 0.25 <= time.monotonic() - started < 3
    finally:
        gate.set()


async def test_async_timeouts_fire(held: tuple[ServerThread, Gated], transport: str) -> None:
    server, gate = held[0], held[1].gate
    gate.clear()
    try:
        async with AsyncClient(address_of(server, transport), transport, timeout=0.3) as client:
            with pytest.raises(TimeoutError):  # DeadlineExceededError is a TimeoutError
                await client.predict("held at the gate")
    finally:
        gate.set()

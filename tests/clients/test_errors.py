"""Each typed error on its condition, from a real server over both transports; retries only
where the server asked for them (tiny local servers that answer 503 / UNAVAILABLE or 429 /
RESOURCE_EXHAUSTED on purpose); timeouts on the client's clock."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

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
from tests.clients.conftest import address_of
from tests.clients.stubs import Script
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


# --- retries: local servers that refuse on purpose (tests/clients/stubs.py) --------------

def _stub(request: pytest.FixtureRequest, transport: str) -> tuple[str, Script]:
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

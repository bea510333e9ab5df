"""What the client puts on the wire besides the request: credentials as headers / metadata,
and TLS with a CA the caller names (stub servers with a throwaway certificate)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bet_client import AsyncClient, Client, UnavailableError
from tests.clients import stubs


def _stub(transport: str, tls: stubs.Tls | None = None):  # noqa: ANN202
    return stubs.rest_stub(tls) if transport == "rest" else stubs.grpc_stub(tls)


def test_sends_the_bearer_token_and_api_key(transport: str) -> None:
    with _stub(transport) as (address, script):
        with Client(address, transport, token="t0k3n", api_key="k3y") as client:
            client.predict("x")
        with Client(address, transport) as client:
            client.predict("x")
    sent, bare = script.headers
    assert sent["authorization"] == "Bearer t0k3n" and sent["x-api-key"] == "k3y"
    assert "authorization" not in bare and "x-api-key" not in bare


def test_tls_with_the_callers_ca(transport: str, tmp_path: Path) -> None:
    tls = stubs.self_signed(tmp_path)
    with _stub(transport, tls) as (address, script):
        with Client(address, transport, ca_file=tls.cert, token="t") as client:
            assert client.predict("x").model_version == "stub"

        async def call() -> str:
            async with AsyncClient(address, transport, ca_file=tls.cert) as client:
                return (await client.predict("x")).model_version

        assert asyncio.run(call()) == "stub"
        # without trusting that CA, the handshake fails: no answer, so UnavailableError
        with Client(address, transport, tls=True, timeout=3, retry=None) as client:
            with pytest.raises(UnavailableError):
                client.predict("x")
    assert script.headers[0]["authorization"] == "Bearer t"
    assert script.calls == 2

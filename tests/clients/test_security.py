"""The auth, rate-limit and TLS rows of the error table through the Python client, from a
real server with all three on (tests/security.py makes the keys, tokens and certificates)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bet_client import (
    NO_RETRY,
    Client,
    Health,
    PermissionDeniedError,
    RateLimitedError,
    RetryPolicy,
    UnauthenticatedError,
)
from tests import security as sec
from tests.clients.conftest import TRANSPORTS, address_of
from tests.harness import ServerThread

KEYS = {f"{use}-{transport}": (f"{use}-{transport}-key-0123456789", ["predict"])
        for use in ("reader", "limited") for transport in TRANSPORTS}


@pytest.fixture(scope="module")
def secured(predictor: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    folder = tmp_path_factory.mktemp("client-security")
    sec.write_keys(folder / "keys.jsonl", KEYS)
    pki = sec.make_pki(folder)
    (ca := folder / "ca.pem").write_bytes(pki.ca_pem)
    with ServerThread(predictor, auth_jwt_secret=sec.SECRET, auth_jwt_issuer=sec.ISSUER,
                      auth_jwt_audience=sec.AUDIENCE, auth_api_keys_file=folder / "keys.jsonl",
                      rate_limit_per_second=1, rate_limit_burst=3,
                      tls_cert_file=pki.cert_file, tls_key_file=pki.key_file) as server:
        yield server, ca


def test_credentials(secured: tuple[ServerThread, Path], transport: str) -> None:
    server, ca = secured
    address = address_of(server, transport)
    with Client(address, transport, ca_file=ca) as anonymous:
        assert anonymous.health() == Health(live=True, ready=True)  # health needs no credentials
        with pytest.raises(UnauthenticatedError):
            anonymous.predict("who am I?")
        with pytest.raises(UnauthenticatedError):
            list(anonymous.stream(["who am I?"]))
    with Client(address, transport, ca_file=ca, token="not-a-jwt") as forged, pytest.raises(UnauthenticatedError):
        forged.predict("who am I?")
    token = sec.hs256(sub=f"alice-{transport}")
    with Client(address, transport, ca_file=ca, token=token) as reader:
        assert reader.predict("Loved it.").prediction
        assert [a.prediction for a in reader.stream(["Hated it."])]  # credentials on the stream too
        with pytest.raises(PermissionDeniedError):
            reader.reload()  # predict scope only
    with Client(address, transport, ca_file=ca, api_key=KEYS[f"reader-{transport}"][0]) as keyed:
        assert keyed.model_info().labels


def test_rate_limit(secured: tuple[ServerThread, Path], transport: str) -> None:
    server, ca = secured
    key = KEYS[f"limited-{transport}"][0]
    with Client(address_of(server, transport), transport, ca_file=ca, api_key=key, retry=NO_RETRY) as client:
        for _ in range(3):  # the burst
            client.model_info()
        with pytest.raises(RateLimitedError) as caught:
            client.model_info()
        assert caught.value.retry_after == 1
    patient = RetryPolicy(max_attempts=3, initial_backoff=0.01)
    with Client(address_of(server, transport), transport, ca_file=ca, api_key=key, retry=patient) as client:
        started = time.monotonic()
        assert client.model_info().labels  # retried after the server's Retry-After
        assert time.monotonic() - started >= 0.9

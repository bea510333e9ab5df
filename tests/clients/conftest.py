"""Fixtures for the client libraries' tests: the address of each transport on the shared
warm server, local stub servers, and the TypeScript client built."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import stubs
from tests.clients.stubs import Script
from tests.harness import ServerThread

TRANSPORTS = ("grpc", "rest")


def address_of(server: ServerThread, transport: str) -> str:
    return server.grpc_target if transport == "grpc" else server.rest_url


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


TS = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def npm(*args: str, cwd: Path = TS, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def built_ts_client() -> Path:
    """The TypeScript client built (its tests too) into clients/typescript/dist."""
    if shutil.which("npm") is None:
        pytest.fail("npm is needed for the TypeScript client's tests (Node 20 or newer)")
    if not (TS / "node_modules" / ".package-lock.json").exists():
        done = npm("ci", "--no-audit", "--no-fund")
        assert done.returncode == 0, done.stdout + done.stderr
    done = npm("run", "build")
    assert done.returncode == 0, done.stdout + done.stderr
    return TS


@pytest.fixture
def rest_stub() -> Iterator[tuple[str, Script]]:
    with stubs.rest_stub() as stub:
        yield stub


@pytest.fixture
def grpc_stub() -> Iterator[tuple[str, Script]]:
    with stubs.grpc_stub() as stub:
        yield stub

"""The Open Inference Protocol tests' server: a real `bet serve` on free loopback ports, and
the native answers (POST /v1/predict) that every OIP answer must equal. The client
libraries' venvs: tests/oip/.venv-* (make oip-clients)."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import start_bet_serve, stop

OIP = Path(__file__).resolve().parent
# Three texts: a confident one and two the model is unsure of (confidence about 0.5, so a
# threshold of 0.9 accepts only the first), one of them not ASCII.
TEXTS = [
    "What a wonderful film, I loved every minute.",
    "Terrible service; the food was cold and the staff rude.",
    "Ce film était magnifique, vraiment émouvant.",
]


@dataclass
class Bet:
    proc: subprocess.Popen
    rest_url: str  # http://127.0.0.1:PORT
    grpc_target: str  # 127.0.0.1:PORT
    http: httpx.Client
    headers: dict[str, str] = field(default_factory=dict)  # credentials for the native calls
    _native: dict[tuple[str, bool], dict[str, Any]] = field(default_factory=dict)

    @property
    def rest_hostport(self) -> str:
        return self.rest_url.removeprefix("http://")

    def native(self, text: str, *, cot: bool = False) -> dict[str, Any]:
        """bet's own answer for one text, never refused (threshold 0); cached."""
        key = (text, cot)
        if key not in self._native:
            body: dict[str, Any] = {"text": text, "confidence_threshold": 0}
            if cot:
                body["return_cot"] = True
            reply = self.http.post("/v1/predict", json=body, headers=self.headers)
            assert reply.status_code == 200, reply.text
            self._native[key] = reply.json()
        return self._native[key]

    def labels(self) -> list[str]:
        reply = self.http.get("/v1/model", headers=self.headers)
        assert reply.status_code == 200, reply.text
        return reply.json()["labels"]


def serve(extra_env: dict[str, str], headers: dict[str, str] | None = None) -> Iterator[Bet]:
    proc, rest, target = start_bet_serve(extra_env)
    try:
        with httpx.Client(base_url=rest, timeout=60) as http:
            yield Bet(proc, rest, target, http, headers=headers or {})
    finally:
        stop(proc)


@pytest.fixture(scope="package")
def bet() -> Iterator[Bet]:
    """`bet serve` with the default settings (the model's OIP name: bet)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("BET_OIP_")}
    assert not env, f"unset {sorted(env)} to run these tests"
    yield from serve({})


def client_python(name: str) -> Path:
    """The interpreter of tests/oip/.venv-NAME; without it the test fails under CI and skips
    elsewhere."""
    python = OIP / f".venv-{name}" / "bin" / "python"
    stamp = OIP / f".venv-{name}" / ".installed"
    if not (python.exists() and stamp.exists()):
        message = f"{python.parent.parent} is missing or incomplete: run make oip-clients"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python

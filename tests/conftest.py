"""Shared fixtures: the real model (the embedded default, or BET_MODEL as `bet serve` would
take it), loaded once, and one warm server on free loopback ports for the tests that need
no special settings."""
from __future__ import annotations

import os

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import ServerThread


@pytest.fixture(scope="session")
def predictor() -> Any:
    from model.predictor import Predictor

    return Predictor.load(os.environ.get("BET_MODEL") or None)


@pytest.fixture(scope="session")
def served(predictor: Any) -> Iterator[ServerThread]:
    with ServerThread(predictor) as server:
        yield server

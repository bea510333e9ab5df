"""Shared fixtures: the real default model, loaded once, and one warm server on free
loopback ports for the tests that need no special settings."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import ServerThread


@pytest.fixture(scope="session")
def predictor() -> Any:
    from model.predictor import Predictor

    return Predictor.load()


@pytest.fixture(scope="session")
def served(predictor: Any) -> Iterator[ServerThread]:
    with ServerThread(predictor) as server:
        yield server

"""Administration through the Python client: reload and rollback between two versions of a
model store, on both transports, and the typed error for a version that is not there."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bet_client import Client, NotFoundError
from tests.clients.conftest import address_of
from tests.harness import ServerThread
from tests.integration.test_reload import add_version, as_version


def test_reload_and_rollback(predictor: Any, tmp_path: Path) -> None:
    for name in ("1", "2"):
        add_version(tmp_path, name)
    with ServerThread(as_version(predictor, "2"), model_store=tmp_path) as server:
        for transport, version, previous in (("grpc", "1", "2"), ("rest", "2", "1")):
            with Client(address_of(server, transport), transport) as client:
                answer = client.reload(version, timeout=60)
                assert (answer.previous_version, answer.model.version) == (previous, version)
                assert client.model_info().version == version
                assert client.predict("Loved it.").model_version == version
                with pytest.raises(NotFoundError):
                    client.reload("no-such-version")

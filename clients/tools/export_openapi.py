"""Writes the REST app's OpenAPI document without starting a server or loading a model:
the app is built by its own factory around a stand-in that only names a version.

    python clients/tools/export_openapi.py clients/openapi.json
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from server.core.metrics import Metrics
from server.rest.app import create_rest_app
from server.settings import Settings


def document() -> dict:
    # The served document names the model's version; the committed one names the package's,
    # so that a new checkpoint does not make the clients stale.
    stand_in = SimpleNamespace(version=version("bet"))
    app = create_rest_app(stand_in, Metrics(CollectorRegistry()),  # type: ignore[arg-type]
                          max_request_bytes=Settings.model_fields["max_request_bytes"].default)
    return app.api.openapi()


def main(out: str) -> None:
    Path(out).write_text(json.dumps(document(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

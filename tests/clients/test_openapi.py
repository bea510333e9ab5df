"""The OpenAPI document that `make clients` exports without a server is the one a served
app answers (but for info.version: the package's, not the model's)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

EXPORT = Path(__file__).resolve().parents[2] / "clients" / "tools" / "export_openapi.py"


def test_exported_document_is_the_served_one(served) -> None:
    spec = importlib.util.spec_from_file_location("export_openapi", EXPORT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported = module.document()
    served_document = served.http.get("/openapi.json").json()
    assert served_document["info"].pop("version") == served.server.service.version
    exported["info"].pop("version")
    assert exported == served_document

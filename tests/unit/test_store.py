"""The model store's order of versions (which is newest) and its lookups."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.core.store import ModelStore, version_key
from server.errors import ModelNotFound
from server.settings import Settings


def test_version_names_sort_as_numbers_and_semver() -> None:
    names = ["10", "2", "1.10.0", "1.9.3", "v1.10.1", "1.10.1-rc.2", "1.10.1-rc.10", "2.0-beta",
             "run9", "run10", "latest"]
    ordered = sorted(names, key=version_key)
    assert ordered == ["latest", "run9", "run10", "1.9.3", "1.10.0", "1.10.1-rc.2", "1.10.1-rc.10",
                       "v1.10.1", "2.0-beta", "2", "10"]
    assert version_key("2.0-beta") < version_key("2") == version_key("2.0.0") == version_key("v2.0")


def _version(store: Path, name: str, created_at: str | None = None) -> None:
    folder = store / name
    folder.mkdir()
    if created_at is not None:
        (folder / "metadata.json").write_text(json.dumps({"version": name, "created_at": created_at}))


def test_store_lists_newest_first_and_breaks_ties_by_created_at(tmp_path: Path) -> None:
    _version(tmp_path, "1", "2025-03-01T00:00:00+00:00")
    _version(tmp_path, "v2.0", "2025-01-01T00:00:00+00:00")
    _version(tmp_path, "2", "2025-02-01T00:00:00+00:00")  # equal to v2.0, made later: newer
    _version(tmp_path, ".incoming")  # hidden: still being copied in
    (tmp_path / "notes.txt").write_text("not a version")
    store = ModelStore(tmp_path)
    assert [e.version for e in store.versions()] == ["2", "v2.0", "1"]
    assert store.find(None).version == "2"
    assert store.find("1").created_at == "2025-03-01T00:00:00+00:00"
    with pytest.raises(ModelNotFound, match="'9' is not in the model store"):
        store.find("9")
    with pytest.raises(ModelNotFound):
        store.find(".incoming")


def test_an_empty_or_missing_store_has_no_newest(tmp_path: Path) -> None:
    assert ModelStore(tmp_path / "absent").versions() == []
    with pytest.raises(ModelNotFound, match="holds no versions"):
        ModelStore(tmp_path).find(None)


def test_settings_take_a_store_or_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BET_MODEL_STORE", str(tmp_path))
    monkeypatch.setenv("BET_MODEL_VERSION", "3")
    settings = Settings()
    assert (settings.model_store, settings.model_version) == (tmp_path, "3")
    with pytest.raises(ValueError, match="not both"):
        Settings(model=tmp_path)
    monkeypatch.delenv("BET_MODEL_STORE")
    with pytest.raises(ValueError, match="needs a model store"):
        Settings()

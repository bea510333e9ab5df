"""The model store: a directory whose subfolders are production checkpoints, each folder's
name its version. Which version is newest is decided here, and nowhere else.

Order ("newest" = last): names that read as version numbers (`3`, `1.10.2`, `v2.0-rc1`,
an optional leading `v`, dot-separated numbers, an optional `-pre-release` and `+build`)
compare as semver does, with any number of numeric parts (a missing part counts as 0) and a
pre-release older than its release. Any other name sorts older than every numbered one,
and among themselves by natural order (`run9` < `run10`). Equal keys (`1.2` and `v1.2.0`)
are ordered by the checkpoint's `created_at`, then by name. Folders whose name starts with
`.` are ignored, so a version can be copied in as `.incoming` and renamed when complete.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.errors import ModelNotFound

_SEMVER = re.compile(r"^[vV]?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_RUNS = re.compile(r"(\d+)")
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class VersionEntry:
    version: str  # the folder's name
    path: Path
    created_at: str  # from metadata.json; "" when unreadable


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """'rc10' -> ((1, 'rc'), (0, 10)): numbers compare as numbers, and before words."""
    return tuple((0, int(run)) if run.isdigit() else (1, run) for run in _RUNS.split(text) if run)


def version_key(name: str) -> tuple[Any, ...]:
    """Sort key of a version name; larger is newer (see the module's docstring)."""
    match = _SEMVER.match(name)
    if match is None:
        return (0, _natural(name))
    numbers = [int(n) for n in match.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:  # 1.2 == 1.2.0
        numbers.pop()
    pre = match.group(2)
    # semver: a release is newer than its pre-releases; pre-releases compare part by part
    pre_key = (1, ()) if pre is None else (0, tuple(_natural(p) for p in pre.split(".")))
    return (1, tuple(numbers), pre_key)


def _created(entry: VersionEntry) -> datetime:
    try:
        moment = datetime.fromisoformat(entry.created_at)
    except ValueError:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _created_at(folder: Path) -> str:
    try:
        value = json.loads((folder / "metadata.json").read_text(encoding="utf-8")).get("created_at", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


class ModelStore:
    """Reads the directory on every call, so versions added or removed while serving show."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[VersionEntry]:
        """Every version, newest first."""
        try:
            folders = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError:
            return []
        entries = [VersionEntry(p.name, p, _created_at(p)) for p in folders]
        entries.sort(key=lambda e: (version_key(e.version), _created(e), e.version), reverse=True)
        return entries

    def find(self, version: str | None) -> VersionEntry:
        """The entry named `version`, or the newest for None; ModelNotFound otherwise."""
        entries = self.versions()
        if version is None:
            if not entries:
                raise ModelNotFound(f"the model store {self.root} holds no versions")
            return entries[0]
        for entry in entries:
            if entry.version == version:
                return entry
        known = ", ".join(e.version for e in entries[:10]) or "none"
        raise ModelNotFound(f"version {version!r} is not in the model store (available: {known})")

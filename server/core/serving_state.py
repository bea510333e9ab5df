"""The serving version of the whole server, in one small JSON file: every worker follows it,
a worker started again loads it, and a server started again serves it. A reload or rollback
that succeeds in one worker publishes what it now serves; the other workers see the file
change and switch to it, each once (they follow generations, not contents).

The record also keeps the command line's choice it was made under (`configured`: the model
store, the pinned version, the checkpoint): a server started with another choice serves that
choice, so an operator's new pin wins over an old reload.

Writes are atomic (a temporary file renamed over the record) and serialised by an flock on a
lock file beside it, so two reloads at once leave the later one, and a reader never sees half
a record."""
from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = ".bet-serving.json"  # in the model store; the store ignores names starting with "."
POLL_S = 0.25  # how often a worker looks at the file (one stat call)


@dataclass(frozen=True)
class ServingRecord:
    generation: int  # one more on every publish
    version: str
    digest: str  # of the checkpoint: a version rebuilt in place under its old name differs
    configured: dict[str, Any]


class ServingState:
    def __init__(self, path: Path, configured: dict[str, Any]) -> None:
        self.path = Path(path)
        self.configured = configured
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) last read

    def read(self) -> ServingRecord | None:
        """The record, or None when there is none or it cannot be read (logged)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return ServingRecord(int(raw["generation"]), str(raw["version"]), str(raw["digest"]),
                                 dict(raw["configured"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the serving state cannot be read; ignoring it", extra={"fields": {
                "path": str(self.path), "error": f"{type(exc).__name__}: {exc}"}})
            return None

    def applicable(self) -> ServingRecord | None:
        """The record when it was made under this server's configured choice."""
        record = self.read()
        return record if record is not None and record.configured == self.configured else None

    def publish(self, version: str, digest: str) -> ServingRecord:
        """Records `version` as what the server serves; returns the new record. OSError when
        the file cannot be written (the caller logs it: the version still serves here)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            previous = self.read()
            record = ServingRecord((previous.generation if previous else 0) + 1, version, digest,
                                   self.configured)
            body = {"generation": record.generation, "version": version, "digest": digest,
                    "configured": self.configured, "updated_at": datetime.now(UTC).isoformat()}
            temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            with open(temporary, "w", encoding="utf-8") as out:
                json.dump(body, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        return record

    def changed(self) -> bool:
        """Whether the file differs from when this was last asked (a stat, no read)."""
        try:
            st = os.stat(self.path)
            now: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            now = None
        if now == self._seen:
            return False
        self._seen = now
        return now is not None

    def forget(self) -> None:
        """The next changed() is true: the record is read again."""
        self._seen = None


class Follower:
    """One worker's side: publishes the reloads it makes, follows those of the others."""

    RETRY_S = 5.0  # after a failed switch (the version unreadable here), try again this often

    def __init__(self, state: ServingState, serving: Callable[[], tuple[str, str]],
                 switch: Callable[[str], Awaitable[bool]]) -> None:
        self._state = state
        self._serving = serving  # () -> (version, digest) this worker serves now
        self._switch = switch  # version -> whether a reload to it (not published again) worked
        record = state.read()
        self._applied = record.generation if record is not None else 0

    def published(self, version: str, digest: str) -> None:
        """After this worker's own reload (or its start on a choice not yet recorded)."""
        try:
            self._applied = self._state.publish(version, digest).generation
        except OSError as exc:
            log.error("cannot record the serving version: other workers will not follow it",
                      extra={"fields": {"path": str(self._state.path), "error": str(exc)}})

    async def check(self) -> bool:
        """Switches to a newer record made by another worker; False when that failed."""
        if not self._state.changed():
            return True
        record = self._state.read()
        if record is None or record.generation <= self._applied:
            return True
        if (record.version, record.digest) != self._serving():
            log.info("following the serving version", extra={"fields": {
                "model_version": record.version, "generation": record.generation}})
            if not await self._switch(record.version):
                self._state.forget()
                return False
        self._applied = max(self._applied, record.generation)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S if await self.check() else self.RETRY_S)

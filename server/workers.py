"""What a serving process knows of being one of several (`bet serve --workers N`): its slot,
and its link to the supervisor (server/supervisor.py): the REST sockets it inherited, the
heartbeat it must keep, its parent, and where it reports ready."""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WORKER_ENV = "BET_WORKER_INDEX"  # the worker's slot, 0..N-1 (a replacement takes the slot it fills)


def is_worker() -> bool:
    return WORKER_ENV in os.environ


def worker_index() -> int | None:
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None else None


@dataclass
class WorkerLink:
    sockets: list[socket.socket]  # the REST listening sockets, bound by the supervisor
    heartbeat: Callable[[], None]  # to call at least every heartbeat_s, from the event loop
    heartbeat_s: float
    parent_pid: int
    runtime_dir: Path  # shared with the supervisor and the other workers

    def parent_alive(self) -> bool:
        return os.getppid() == self.parent_pid

    def report_ready(self, version: str) -> None:
        """The structured readiness signal: a file per worker, read by the supervisor."""
        ready_file(self.runtime_dir, os.getpid()).write_text(
            json.dumps({"pid": os.getpid(), "worker": worker_index(), "model_version": version}))


def ready_file(runtime_dir: Path, pid: int) -> Path:
    return runtime_dir / "ready" / f"{pid}.json"

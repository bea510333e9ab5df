"""Several serving processes (`bet serve --workers N`, BET_WORKERS): a parent that loads no
model starts N workers, each a whole `bet serve` (both doors, its own model and batcher), on
the same REST and gRPC ports (SO_REUSEPORT: the kernel spreads connections over them). One
process is one GIL; with N, the event loops and forward passes of different workers run at
the same time.

The parent prints the addresses once every worker serves; forwards SIGTERM/SIGINT (each
worker drains) and SIGHUP (each reloads its configured choice); relays a reload that a
caller asked of one worker (REST or gRPC admin) to the others, with the version that worker
now serves; and starts a worker again if one dies. Metrics are summed over the workers
(server/core/metrics.py). The rate limit is kept per worker: a caller whose connections
reach several workers may get up to N times its rate.

Parent and worker talk over the worker's stdin and stdout, one line a message: a worker
prints `bet-worker {"reload": VERSION}` after a reload asked by a caller; the parent writes
`{"reload": VERSION}` to the others' stdin. A worker whose stdin closes (the parent is gone)
drains and exits."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from server.settings import Settings, hostport

if TYPE_CHECKING:
    from server.core.reload import Reloader

log = logging.getLogger(__name__)

WORKER_ENV = "BET_WORKER_INDEX"  # set by the parent in each worker's environment
_TO_PARENT = "bet-worker "
_RESTART_PAUSE_S = 1.0  # between a worker's death and its replacement


def is_worker() -> bool:
    return WORKER_ENV in os.environ


def worker_index() -> int | None:
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None else None


# --- in a worker ------------------------------------------------------------------------


def follow_parent(
    reloader: "Reloader", reload: Callable[[str | None], None], stop: asyncio.Event
) -> asyncio.Task:
    """Announces this worker's reloads to the parent and follows the parent's messages."""
    reloader.on_reloaded = lambda version: print(_TO_PARENT + json.dumps({"reload": version}), flush=True)
    return asyncio.create_task(_read_parent(reload, stop), name="bet-parent")


async def _read_parent(reload: Callable[[str | None], None], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "reload" in message:
            reload(message["reload"])
    log.warning("the parent process is gone: draining")
    stop.set()


# --- the parent ---------------------------------------------------------------------------


class _Worker:
    def __init__(self, index: int, command: list[str], env: dict[str, str], events: queue.Queue) -> None:
        self.index = index
        self.ready = False
        self.proc = subprocess.Popen(command, env={**env, WORKER_ENV: str(index)}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.started = time.monotonic()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout, events), daemon=True).start()

    def _read(self, stdout: IO[str], events: queue.Queue) -> None:
        for line in stdout:
            events.put((self, line.rstrip("\n")))

    def tell(self, message: dict) -> None:
        with contextlib.suppress(OSError, ValueError):  # a worker that is gone is restarted
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


def _reserve_port(host: str, port: int) -> tuple[int, socket.socket | None]:
    """Port 0 (any free port) is chosen here so that every worker binds the same one; the
    bound socket (SO_REUSEPORT, never listening) keeps it until the workers have it."""
    if port != 0:
        return port, None
    family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock.getsockname()[1], sock


def supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Runs `settings.workers` workers of `bet serve` (argv: the command's own arguments)
    until SIGTERM or SIGINT; returns the exit code."""
    from prometheus_client import multiprocess

    rest_port, rest_hold = _reserve_port(settings.host, settings.rest_port)
    grpc_port, grpc_hold = _reserve_port(settings.host, settings.grpc_port)
    metrics_dir = tempfile.mkdtemp(prefix="bet-metrics-")
    command = [sys.executable, "-m", "server.cli", *argv,
               "--rest-port", str(rest_port), "--grpc-port", str(grpc_port)]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    events: queue.Queue = queue.Queue()
    wanted: list[int] = []  # signals received, handled in the loop below

    def on_signal(sig: int, _frame: object) -> None:
        wanted.append(sig)
        events.put(None)  # wakes the loop

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    workers = [_Worker(i, command, env, events) for i in range(settings.workers)]
    serving_line = ""
    announced = False
    try:
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                event = None
            while wanted:
                sig = wanted.pop(0)
                if sig in (signal.SIGTERM, signal.SIGINT):
                    return _stop(workers, settings.drain_timeout_s)
                for w in workers:
                    w.signal(signal.SIGHUP)
            if event is not None:
                worker, line = event
                if line.startswith(_TO_PARENT):
                    message = json.loads(line.removeprefix(_TO_PARENT))
                    for other in workers:
                        if other is not worker:
                            other.tell(message)
                elif line.startswith("bet serving model"):
                    serving_line = line
                elif line.lstrip().startswith("gRPC"):
                    worker.ready = True
            if not announced and all(w.ready for w in workers):
                announced = True
                for hold in (rest_hold, grpc_hold):
                    if hold is not None:
                        hold.close()
                print(f"{serving_line} with {len(workers)} workers", flush=True)
                print(f"  REST  {_url(settings, rest_port)}", flush=True)
                print(f"  gRPC  {hostport(settings.host, grpc_port)}", flush=True)
            for i, w in enumerate(workers):
                code = w.proc.poll()
                if code is None:
                    continue
                multiprocess.mark_process_dead(w.proc.pid, metrics_dir)
                if not announced:  # a worker could not start (its message is on stderr)
                    _stop(workers, 0)
                    return code or 2
                if time.monotonic() - w.started > _RESTART_PAUSE_S:
                    log.error("worker %d exited with %s; starting it again", w.index, code)
                    workers[i] = _Worker(w.index, command, env, events)
                    workers[i].ready = True  # the addresses were printed already
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _stop(workers: list[_Worker], drain_timeout_s: float) -> int:
    """SIGTERM to every worker, then waits for their drains; 0 when each exited 0, or was
    still loading its model (nothing to drain: SIGTERM ends it before it serves)."""
    for w in workers:
        w.signal(signal.SIGTERM)
    deadline = time.monotonic() + drain_timeout_s + 10  # a worker's drain, and its own exit
    clean = True
    for w in workers:
        try:
            code = w.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            code = w.proc.wait()
        clean &= code == 0 or (code == -signal.SIGTERM and not w.ready)
    return 0 if clean else 1


def _url(settings: Settings, port: int) -> str:
    return f"{'https' if settings.tls_cert_file else 'http'}://{hostport(settings.host, port)}"

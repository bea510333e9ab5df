"""`bet serve --workers N`: gunicorn's arbiter supervises N worker processes, each a whole bet
server (both doors, its own model and batcher, on one event loop: server/app.py). The
arbiter, which loads no model, binds the REST port and the workers share its socket; each
worker binds the gRPC port itself (SO_REUSEPORT). docs/adr/0004-supervision.md says why
gunicorn, and what bet changes in it.

From gunicorn: a worker that exits is replaced; a worker whose event loop has not beaten for
`heartbeat_timeout_s` (hung, or stopped) is killed (SIGABRT, then SIGKILL) and replaced;
SIGTERM stops accepting, lets each worker drain, and kills what is left after the drain
limit. bet's own parts:
- each worker takes a slot 0..N-1 (its `worker` in the logs; a replacement takes the slot);
- SIGHUP asks one worker to reload its configured choice; the others follow the serving
  state (server/core/serving_state.py), which also serves a worker started again;
- SIGINT drains as SIGTERM does (gunicorn's would quit at once);
- a worker reports ready with a file of its own (server/workers.py); the arbiter prints the
  addresses once every worker has;
- metrics are shared through prometheus_client's multiprocess directory, and a worker's
  files are marked dead when it exits."""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer
from gunicorn.workers.base import Worker

from server.logs import BufferedStderr
from server.settings import Settings, hostport
from server.workers import WORKER_ENV, WorkerLink, ready_file

log = logging.getLogger(__name__)

_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def supervise(settings: Settings) -> int:
    """Runs `settings.workers` workers until SIGTERM or SIGINT; returns the exit code."""
    runtime_dir = Path(tempfile.mkdtemp(prefix="bet-serve-"))
    (runtime_dir / "ready").mkdir()
    metrics_dir = runtime_dir / "metrics"
    metrics_dir.mkdir()
    # before prometheus_client is first imported: its values live in these files
    os.environ[_METRICS_ENV] = str(metrics_dir)
    try:  # bound here, not by gunicorn (which retries a port in use for five seconds)
        rest = _bind(settings.host, settings.rest_port, reuse_port=False)
        grpc_port, hold = _reserve_port(settings.host, settings.grpc_port)
    except OSError as exc:
        print(f"bet serve: {exc}", file=sys.stderr)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        return 2
    app = BetApplication(settings.model_copy(update={"grpc_port": grpc_port}), runtime_dir, hold,
                         rest_fd=rest.detach())
    supervisor = os.getpid()
    try:
        app.run()
    except SystemExit as exc:
        if os.getpid() != supervisor:
            raise  # a worker's exit, unwinding through the fork: not the supervisor's to handle
        if exc.code == Arbiter.WORKER_BOOT_ERROR:
            return 2  # as one process does: the worker said why on stderr
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        if os.getpid() == supervisor:
            if hold is not None:
                hold.close()
            shutil.rmtree(runtime_dir, ignore_errors=True)
    return 0


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT if reuse_port else socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {hostport(host, port)}: {exc.strerror}") from None
    return sock


def _reserve_port(host: str, port: int) -> tuple[int, socket.socket | None]:
    """gRPC port 0 (any free port) is chosen here so that every worker binds the same one; the
    bound socket (SO_REUSEPORT, never listening) keeps it for the server's life. A port in
    use by another program is refused here, before any worker starts."""
    sock = _bind(host, port, reuse_port=True)
    if port != 0:
        sock.close()
        return port, None
    return sock.getsockname()[1], sock


class BetApplication(BaseApplication):
    def __init__(self, settings: Settings, runtime_dir: Path, hold: socket.socket | None, *, rest_fd: int) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.hold = hold
        self.rest_fd = rest_fd  # the REST socket, bound by supervise(); gunicorn listens on it
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        assert self.cfg is not None
        for name, value in {
            "bind": [f"fd://{self.rest_fd}"],
            "workers": s.workers,
            "worker_class": "server.supervisor.BetWorker",
            "timeout": math.ceil(s.heartbeat_timeout_s),  # gunicorn counts whole seconds
            # a worker's own drain (drain_timeout_s), then its exit, before SIGKILL
            "graceful_timeout": math.ceil(s.drain_timeout_s) + 10,
            "backlog": 1024,
            "logger_class": "server.supervisor.BetLogger",
            "loglevel": s.log_level.lower(),
            "proc_name": "bet",
            "control_socket_disable": True,  # a thread in the arbiter, which forks
            "pre_fork": _pre_fork,
            "post_fork": _post_fork,
            "child_exit": _child_exit,
        }.items():
            self.cfg.set(name, value)

    def load(self) -> Settings:  # what gunicorn calls the app: each worker serves bet itself
        return self.settings

    def run(self) -> None:
        BetArbiter(self).run()


class BetArbiter(Arbiter):
    announced = False
    halting = False

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        self.halting = True
        super().halt(reason, exit_status)

    def reap_workers(self) -> None:
        try:
            super().reap_workers()
        except HaltServer:
            if not self.halting:  # while halting, a second worker that failed to boot is no news
                raise

    def handle_hup(self) -> None:
        """One worker reloads its configured choice; the serving state carries it to the rest."""
        oldest = min(self.WORKERS.items(), key=lambda item: item[1].age, default=None)
        if oldest is not None:
            self.log.info("reloading the configured model choice in worker %s", oldest[0])
            self.kill_worker(oldest[0], signal.SIGHUP)

    def handle_int(self) -> None:
        self.handle_term()

    def manage_workers(self) -> None:
        super().manage_workers()
        if not self.announced and len(self.WORKERS) == self.num_workers:
            self._announce()

    def _announce(self) -> None:
        app: BetApplication = self.app
        ready = []
        for pid in self.WORKERS:
            try:
                ready.append(json.loads(ready_file(app.runtime_dir, pid).read_text()))
            except (OSError, ValueError):
                return
        self.announced = True
        s = app.settings
        rest_port = self.LISTENERS[0].sock.getsockname()[1]
        scheme = "https" if s.tls_cert_file else "http"
        print(f"bet serving model {ready[0]['model_version']} with {len(ready)} workers", flush=True)
        print(f"  REST  {scheme}://{hostport(s.host, rest_port)}", flush=True)
        print(f"  gRPC  {hostport(s.host, s.grpc_port)}", flush=True)


def _pre_fork(arbiter: Arbiter, worker: Worker) -> None:
    """The lowest free slot, so that a replacement is the worker it replaces in the logs."""
    taken = {getattr(w, "slot", None) for w in arbiter.WORKERS.values()}
    worker.slot = min(i for i in range(arbiter.num_workers + 1) if i not in taken)
    worker.replacement = arbiter.announced  # a replacement's failure is its own, not the server's
    for handler in logging.getLogger().handlers:  # else the child writes the buffered lines again
        handler.flush_now() if isinstance(handler, BufferedStderr) else handler.flush()


def _post_fork(arbiter: Arbiter, worker: Worker) -> None:
    os.environ[WORKER_ENV] = str(worker.slot)
    if arbiter.app.hold is not None:  # the arbiter's; the worker binds its own
        arbiter.app.hold.close()
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # in case it was imported before the fork


def _child_exit(arbiter: Arbiter, worker: Worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    ready_file(arbiter.app.runtime_dir, worker.pid).unlink(missing_ok=True)


class BetWorker(Worker):
    """One worker: bet's own server (server/app.py) on the sockets gunicorn bound."""

    slot = 0
    replacement = False

    def init_signals(self) -> None:
        # The event loop installs bet's handlers (TERM and INT drain, HUP reloads); SIGABRT,
        # the arbiter's answer to a missed heartbeat, ends the process at once.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def run(self) -> None:
        from server.app import run

        app: BetApplication = self.app
        link = WorkerLink(sockets=[listener.sock for listener in self.sockets], heartbeat=self.notify,
                          heartbeat_s=max(0.2, self.timeout / 2), parent_pid=self.ppid,
                          runtime_dir=app.runtime_dir)
        code = run(app.settings, link)
        if code == 2 and not self.replacement:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)  # the server's first start failed: the arbiter stops
        sys.exit(code)


class BetLogger(glogging.Logger):
    """gunicorn's messages through bet's JSON log lines (server/logs.py), not its own format."""

    def setup(self, cfg: Any) -> None:
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.error_log.handlers[:] = []
        self.error_log.propagate = True
        self.access_log.handlers[:] = []
        self.access_log.propagate = False

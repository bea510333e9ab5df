"""Wiring: one core (model, batcher, service) behind a gRPC and a REST server on one event
loop; start, warm up, drain."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry

from server.core.auth import Guard
from server.core.batching import Batcher
from server.core.metrics import Metrics
from server.core.models import LoadedModel, Predictor
from server.core.overload import Refusals
from server.core.reload import Loader, ModelSource, Reloader
from server.core.service import InferenceService
from server.core.serving_state import FILE_NAME, Follower, ServingState
from server.core.store import ModelStore
from server.core.tracing import Tracing
from server.errors import ModelNotFound, ServiceError
from server.grpc.server import SERVICE_NAME, create_grpc_server
from server.logs import configure_logging
from server.rest.app import create_rest_app
from server.rest.protocol import http_protocol
from server.settings import Settings, hostport
from server.workers import WorkerLink

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the process's handlers drain both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    """The REST socket of a server of one process."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    return sock


class BetServer:
    """Both doors and the core. start() → warm_up() → (serve) → stop()."""

    def __init__(
        self, settings: Settings, predictor: Predictor, registry: CollectorRegistry | None = None,
        *, loader: Loader | None = None, tracing: Tracing | None = None,
        rest_sockets: list[socket.socket] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics(registry or CollectorRegistry(),
                               tracing or Tracing.from_settings(settings.tracing))
        # authentication, scopes and the rate limit of both doors; ValueError for a bad keys file
        self.guard = Guard.from_settings(settings, self.metrics.registry)
        self.metrics.serving(predictor.version, predictor.info().digest)
        self._predictor = predictor
        self._loader = loader or checkpoint_loader(settings.device, settings.compute_dtype)
        self.service: InferenceService | None = None
        self.reloader: Reloader | None = None
        # Given: one of several workers, on the REST sockets the supervisor bound (and the
        # gRPC port shared with SO_REUSEPORT); else this process binds both itself.
        self._rest_sockets = rest_sockets
        self.rest_url = ""
        self.grpc_target = ""

    def _make_batcher(self, predict: Any, cost: Any = None) -> Batcher:
        """A started batcher with the server's settings; each model version gets its own."""
        s = self.settings
        batcher = Batcher(
            predict, self.metrics, max_batch_size=s.max_batch_size, max_delay_s=s.max_delay_ms / 1000,
            max_queue=s.max_queue, retry_after_s=s.retry_after_s,
            admission_budget_s=s.admission_budget_ms / 1000, torch_threads=s.torch_threads or 0, cost=cost,
        )
        batcher.start()
        return batcher

    async def start(self) -> None:
        s = self.settings
        source = model_source(s)
        model = LoadedModel.start(self._predictor, self._make_batcher)
        self.service = InferenceService(model, request_timeout_s=s.request_timeout_s, versions=source.listing,
                                        metrics=self.metrics, unfamiliar_epistemic_nats=s.unfamiliar_epistemic_nats)
        self.service.stream_idle_timeout_s = s.stream_idle_timeout_s
        self.refusals = Refusals(self.service, self.metrics, pace_s=s.refusal_pace_ms / 1000)
        self.reloader = Reloader(
            self.service, source, self._loader, self._make_batcher, self.metrics,
            retire_timeout_s=s.request_timeout_s,
        )

        self._grpc, grpc_port, self._health = create_grpc_server(
            self.service, self.metrics, address=hostport(s.host, s.grpc_port),
            guard=self.guard, max_stream_message_bytes=s.max_stream_message_bytes, tls=self._tls(),
            max_request_bytes=s.max_request_bytes, reloader=self.reloader, shared_port=self._rest_sockets is not None,
            oip_model_name=s.oip_model_name, refusals=self.refusals,
        )
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._grpc.start()
        self.grpc_target = hostport(s.host, grpc_port)

        try:
            await self._start_rest()
        except BaseException:
            await self._grpc.stop(grace=None)
            await self.service.model.batcher.drain(timeout_s=0)
            raise

    async def _start_rest(self) -> None:
        s = self.settings
        assert self.service is not None
        sock = self._rest_sockets[0] if self._rest_sockets else _listen(s.host, s.rest_port)
        app = create_rest_app(self.service, self.metrics, guard=self.guard, body_timeout_s=s.body_timeout_s,
                              max_request_bytes=s.max_request_bytes,
                              reloader=self.reloader, oip_model_name=s.oip_model_name,
                              demo_page=s.demo_page, cors_origins=s.cors_origins, refusals=self.refusals)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=max(1, math.ceil(s.drain_timeout_s)),  # whole seconds, as uvicorn declares
            ws_max_size=s.max_stream_message_bytes,
            # slow or idle clients: idle keep-alive connections close; past the cap, 503
            timeout_keep_alive=s.keep_alive_timeout_s, limit_concurrency=s.max_connections,
            http=http_protocol(s.header_timeout_s, app.fast_no),
            ssl_certfile=s.tls_cert_file, ssl_keyfile=s.tls_key_file,
        )
        self._uvicorn = _Uvicorn(config)
        self._rest_task = asyncio.create_task(self._uvicorn.serve(sockets=[sock]), name="bet-rest")
        while not self._uvicorn.started:
            if self._rest_task.done():
                self._rest_task.result()  # raises why it could not start
                raise RuntimeError("the REST server stopped while starting")
            await asyncio.sleep(0.01)
        self.rest_url = f"{'https' if s.tls_cert_file else 'http'}://{hostport(s.host, sock.getsockname()[1])}"

    def _tls(self) -> tuple[bytes, bytes] | None:
        """(certificate chain, private key) as PEM, when TLS is configured."""
        s = self.settings
        if s.tls_cert_file is None or s.tls_key_file is None:
            return None
        return s.tls_cert_file.read_bytes(), s.tls_key_file.read_bytes()

    async def warm_up(self) -> None:
        assert self.service is not None
        await self.service.warm_up()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.metrics.ready.set(1)

    async def stop(self) -> None:
        """Stops accepting, lets calls in flight and queued texts finish (within the drain
        timeout), then stops the batcher."""
        assert self.service is not None and self.reloader is not None
        timeout = self.settings.drain_timeout_s
        self.service.ready = False
        self.metrics.ready.set(0)
        self.reloader.close()
        await self._health.enter_graceful_shutdown()
        self._uvicorn.should_exit = True
        await asyncio.gather(self._grpc.stop(grace=timeout), self._rest_task, return_exceptions=True)
        await self.reloader.wait_retired()
        await self.service.model.batcher.drain(timeout_s=1.0)
        self.metrics.tracing.close()

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)


def model_source(settings: Settings) -> ModelSource:
    if settings.model_store is not None:
        return ModelSource(store=ModelStore(settings.model_store), pinned=settings.model_version)
    return ModelSource(path=settings.model)


def checkpoint_loader(device: str | None, dtype: str = "float32") -> Loader:
    """Loads a checkpoint directory (None: the embedded model). From a store, the version
    served is the folder's name; the checkpoint's own metadata version is only logged."""

    def load(path: Path | None, version: str | None) -> Predictor:
        from model.predictor import Predictor as ModelPredictor  # torch is imported here, not at startup

        predictor = ModelPredictor.load(path, device=device, dtype=dtype)
        if version is not None:
            if predictor.version != version:
                log.info("serving a checkpoint as its folder's name", extra={"fields": {
                    "model_version": version, "checkpoint_version": predictor.version}})
            predictor.version = version
        return predictor

    return load


def serving_state(settings: Settings, runtime_dir: Path | None) -> ServingState | None:
    """The record of the serving version (server/core/serving_state.py): BET_STATE_FILE, else
    in the model store, else (several workers serving one checkpoint) in the server's runtime
    directory; None for one process serving one checkpoint, which has nothing to share."""
    if settings.state_file is not None:
        path = settings.state_file
    elif settings.model_store is not None:
        path = settings.model_store / FILE_NAME
    elif runtime_dir is not None:
        path = runtime_dir / "serving.json"
    else:
        return None
    configured = {"model_store": str(settings.model_store) if settings.model_store else None,
                  "model_version": settings.model_version,
                  "model": str(settings.model) if settings.model else None}
    return ServingState(path, configured)


def load_predictor(settings: Settings, state: ServingState | None = None) -> Predictor:
    """The model `bet serve` starts with: the version the serving state names (a reload or
    rollback made under the same configuration), else the pinned or newest version of the
    store, or the checkpoint directory. Raises ModelNotFound or the loader's error."""
    source = model_source(settings)
    record = state.applicable() if state is not None else None
    path, version = source.locate(None, None)
    if record is not None and source.store is not None:
        try:
            path, version = source.locate(record.version, None)
        except ModelNotFound:
            log.warning("the recorded serving version is gone: serving the configured choice",
                        extra={"fields": {"recorded": record.version, "model_version": version}})
    return checkpoint_loader(settings.device, settings.compute_dtype)(path, version)


def run(settings: Settings, link: WorkerLink | None = None) -> int:
    """A serving process, alone or as a worker of server/supervisor.py; the exit code."""
    configure_logging(settings.log_level)  # in a worker: the supervisor's log thread did not fork
    state = serving_state(settings, link.runtime_dir if link else None)
    beating = _beat_while_loading(link)
    try:
        predictor = load_predictor(settings, state)
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint is a message, not a traceback
        print(f"bet serve: cannot load the model: {exc}", file=sys.stderr)
        return 2
    finally:
        beating.set()
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)  # per serving process
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(serve(settings, predictor, state=state, link=link))
    except (OSError, RuntimeError, ValueError) as exc:  # a port in use (grpc: RuntimeError), a bad keys file
        print(f"bet serve: {exc}", file=sys.stderr)
        return 2


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (it comes with uvicorn[standard]): the event loop serves
    both doors, and uvloop spends less CPU per request than asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _beat_while_loading(link: WorkerLink | None) -> threading.Event:
    """Keeps a worker's heartbeat while it loads its model, before its event loop beats."""
    done = threading.Event()
    if link is not None:
        def beat() -> None:
            while not done.wait(link.heartbeat_s):
                link.heartbeat()
        link.heartbeat()
        threading.Thread(target=beat, name="bet-boot-heartbeat", daemon=True).start()
    return done


async def serve(
    settings: Settings, predictor: Predictor, *, state: ServingState | None = None,
    link: WorkerLink | None = None,
) -> int:
    """`bet serve` (or one worker of it, server/supervisor.py): runs until SIGTERM or SIGINT,
    then drains; returns the exit code."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    server = BetServer(settings, predictor, rest_sockets=link.sockets if link else None)
    await server.start()
    await server.warm_up()
    assert server.reloader is not None and server.service is not None
    service, reloader = server.service, server.reloader
    background: set[asyncio.Task] = set()

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    follower = None
    if state is not None:
        async def switch(version: str) -> bool:
            return await _reload_quietly(server, version if settings.model_store else None, relayed=True)

        follower = Follower(state, lambda: (service.version, service.model.info.digest), switch)
        reloader.on_reloaded = follower.published
        record = state.applicable()
        if record is None or (record.version, record.digest) != (service.version, service.model.info.digest):
            follower.published(service.version, service.model.info.digest)
        spawn(follower.run())
    # SIGHUP: the configured choice (pinned, else newest), published like a caller's reload
    loop.add_signal_handler(signal.SIGHUP, lambda: spawn(_reload_quietly(server, None, relayed=False)))
    log.info("serving", extra={"fields": {"model_version": service.version, "pid": os.getpid()}})
    if link is not None:
        spawn(_heartbeat(link, stop))
        link.report_ready(service.version)
    else:
        print(f"bet serving model {predictor.version}", flush=True)
        print(f"  REST  {server.rest_url}", flush=True)
        print(f"  gRPC  {server.grpc_target}", flush=True)
    await stop.wait()
    loop.remove_signal_handler(signal.SIGHUP)
    for task in list(background):
        task.cancel()
    log.info("draining", extra={"fields": {"timeout_s": settings.drain_timeout_s}})
    await server.stop()
    log.info("stopped")
    return 0


async def _heartbeat(link: WorkerLink, stop: asyncio.Event) -> None:
    """Beats from the event loop itself, so a loop that hangs misses its beats; drains when
    the supervisor is gone."""
    while not stop.is_set():
        link.heartbeat()
        if not link.parent_alive():
            log.warning("the supervisor is gone: draining")
            stop.set()
        await asyncio.sleep(link.heartbeat_s)


async def _reload_quietly(server: BetServer, version: str | None, *, relayed: bool) -> bool:
    """A reload no caller waits for (a signal, or following another worker); whether it worked."""
    assert server.reloader is not None
    log.info("reloading the model", extra={"fields": {"requested": version}})
    try:
        await server.reloader.reload(version, relayed=relayed)
    except ServiceError:
        return False  # logged by the reloader; the old version keeps serving
    return True

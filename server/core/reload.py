"""Reload and rollback: load a version beside the serving one (off the event loop), warm it
on its own batcher, switch the service to it in one assignment, then retire the old one
once the requests that took it are answered. A version that fails to load or warm leaves
the old one serving and is answered with ModelNotFound or ModelLoadFailed."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.core import schemas, tracing
from server.core.metrics import Metrics
from server.core.models import BatcherFactory, LoadedModel, Predictor
from server.core.service import InferenceService
from server.core.store import ModelStore
from server.errors import ModelLoadFailed, ModelNotFound, Overloaded, ServiceError

log = logging.getLogger(__name__)

# Loads the checkpoint in a directory (blocking; run in a thread). The second argument is
# the version to serve it as (the store's folder name), or None to keep the checkpoint's.
Loader = Callable[[Path | None, str | None], Predictor]


@dataclass(frozen=True)
class ModelSource:
    """Where versions come from: a model store (with an optional pinned version), or one
    checkpoint directory (None: the embedded default model)."""

    store: ModelStore | None = None
    pinned: str | None = None
    path: Path | None = None

    def listing(self) -> list[tuple[str, str]]:
        """(version, created_at) of every version, newest first; empty with no store."""
        if self.store is None:
            return []
        return [(e.version, e.created_at) for e in self.store.versions()]

    def locate(self, version: str | None, serving: str | None) -> tuple[Path | None, str | None]:
        """The directory of `version` (None: the configured choice) and the name to serve it
        as. Raises ModelNotFound."""
        if self.store is not None:
            entry = self.store.find(version if version is not None else self.pinned)
            return entry.path, entry.version
        if version is not None and version != serving:
            raise ModelNotFound(
                f"version {version!r} is not available: no model store is configured, and the "
                f"only version is the serving one ({serving})")
        return self.path, None


class Reloader:
    def __init__(
        self, service: InferenceService, source: ModelSource, loader: Loader,
        make_batcher: BatcherFactory, metrics: Metrics, *, retire_timeout_s: float,
    ) -> None:
        self._service = service
        self._source = source
        self._loader = loader
        self._make_batcher = make_batcher
        self._metrics = metrics
        self._retire_timeout_s = retire_timeout_s
        self._lock = asyncio.Lock()  # one reload at a time; others wait their turn
        self._retiring: set[asyncio.Task] = set()
        self._closed = False
        # Called with the version (and digest) now serving after a reload that was not itself
        # following another worker's: server/core/serving_state.py records it for the others.
        self.on_reloaded: Callable[[str, str], None] | None = None

    def close(self) -> None:
        """The server is draining: a reload still loading is dropped, none starts."""
        self._closed = True

    async def reload(self, version: str | None = None, *, relayed: bool = False) -> schemas.ReloadResponse:
        """Serves `version` (None: the configured choice) once it is loaded and warm. Runs to
        the end even if the caller goes away, so a half-loaded version is never left behind.
        `relayed`: following another worker's reload, so not recorded again."""
        return await asyncio.shield(self._reload(version, relayed))

    async def _reload(self, version: str | None, relayed: bool) -> schemas.ReloadResponse:
        async with self._lock:
            start = time.monotonic()
            previous = self._service.version
            with self._metrics.tracing.span("bet reload", {
                "bet.requested_version": version, "bet.previous_version": previous,
            }) as span:
                try:
                    model = await self._prepare(version)
                except ServiceError as exc:
                    tracing.finish(span, {"bet.outcome": exc.outcome}, failed=True)
                    self._metrics.reloads.labels(exc.outcome).inc()
                    log.warning("reload refused", extra={"fields": {
                        "requested": version, "serving": previous, "error": exc.detail}})
                    raise
                tracing.finish(span, {"bet.outcome": "ok", "bet.model_version": model.version})
            old = self._service.use(model)
            self._metrics.serving(model.version, model.info.digest)
            self._metrics.reloads.labels("ok").inc()
            self._metrics.load_seconds.observe(time.monotonic() - start)
            log.info("model reloaded", extra={"fields": {
                "model_version": model.version, "previous_version": previous,
                "digest": model.info.digest, "seconds": round(time.monotonic() - start, 3)}})
            self._retire(old)
            if not relayed and self.on_reloaded is not None:
                self.on_reloaded(model.version, model.info.digest)
            return schemas.ReloadResponse(previous_version=previous, model=self._service.model_info())

    async def _prepare(self, version: str | None) -> LoadedModel:
        """Loads and warms the version beside the serving one."""
        if self._closed:
            raise Overloaded("the server is shutting down")
        path, name = self._source.locate(version, self._service.version)
        shown = name or str(path or "the embedded model")
        try:
            predictor = await asyncio.to_thread(self._loader, path, name)
        except Exception as exc:  # noqa: BLE001 - any failure to load keeps the old version
            raise ModelLoadFailed(f"version {shown} cannot be loaded: {_reason(exc, path, name)}") from None
        model = LoadedModel.start(predictor, self._make_batcher)
        try:
            await model.warm_up(time.monotonic() + self._retire_timeout_s)
        except Exception as exc:  # noqa: BLE001
            log.exception("warm-up of version %s failed", shown)
            await model.batcher.drain(timeout_s=0)
            raise ModelLoadFailed(f"version {shown} failed its warm-up: {type(exc).__name__}") from None
        if self._closed:
            await model.batcher.drain(timeout_s=0)
            raise Overloaded("the server is shutting down")
        return model

    def _retire(self, old: LoadedModel) -> None:
        """Lets the old batcher answer what was queued on it, then stops it (in the background,
        so the reload answers as soon as the new version serves)."""
        task = asyncio.create_task(old.batcher.drain(timeout_s=self._retire_timeout_s),
                                   name=f"bet-retire-{old.version}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def wait_retired(self) -> None:
        """Returns when every replaced version has answered its requests (for shutdown)."""
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _reason(exc: Exception, path: Path | None, name: str | None) -> str:
    """The loader's message (it names the file at fault), with the store's directory shown
    as the version's name rather than the server's file system."""
    from model.checkpoint import CheckpointError  # torch is imported here, not at startup

    if not isinstance(exc, CheckpointError):
        log.error("loading %s failed", path, exc_info=(type(exc), exc, exc.__traceback__))
        return f"{type(exc).__name__} while loading (see the server log)"
    text = str(exc)
    if path is not None and name is not None:
        text = text.replace(str(path), name)
    return text

"""Server settings: defaults here, overridden by BET_* environment variables, overridden in
turn by command-line flags (passed as keyword arguments)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.core.schemas import MAX_BATCH_TEXTS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BET_", extra="ignore")

    host: str = "127.0.0.1"
    rest_port: int = Field(8000, ge=0, le=65535)  # 0 picks a free port
    grpc_port: int = Field(50051, ge=0, le=65535)
    model: Path | None = None  # checkpoint directory; None serves the embedded default model
    # A directory of versions (each subfolder a checkpoint named by its version; see
    # server/core/store.py for which is newest); serves the newest unless one is pinned.
    model_store: Path | None = None
    model_version: str | None = None  # the pinned version in the store
    tracing: bool = False  # OpenTelemetry spans to OTLP (needs the `tracing` extra)
    device: str | None = None  # torch device; None lets the model choose
    insecure: bool = False  # allow a non-loopback host without authentication

    max_batch_size: int = Field(32, ge=1)  # texts per forward pass
    max_delay_ms: float = Field(5.0, ge=0)  # longest the oldest queued text waits for company
    max_queue: int = Field(1024, ge=MAX_BATCH_TEXTS)  # queued texts before refusing (503)
    request_timeout_s: float = Field(30.0, gt=0)  # a text waiting longer is dropped
    retry_after_s: int = Field(1, ge=0)  # advice sent with 503 / UNAVAILABLE when overloaded
    drain_timeout_s: float = Field(30.0, ge=0)  # on SIGTERM, time to finish work in flight
    # Largest request body / gRPC message: 256 texts x 10,000 characters, JSON-escaped, fit.
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _model_choice(self) -> "Settings":
        if self.model is not None and self.model_store is not None:
            raise ValueError("give a checkpoint directory (model) or a model store, not both")
        if self.model_version is not None and self.model_store is None:
            raise ValueError("a pinned model version needs a model store (--model-store)")
        return self

    @model_validator(mode="after")
    def _exposure(self) -> "Settings":
        if not self.insecure and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve on non-loopback host {self.host!r} without authentication; "
                "pass --insecure (BET_INSECURE=1) to do it anyway"
            )
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

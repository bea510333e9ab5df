"""Server settings: defaults here, overridden by BET_* environment variables, overridden in
turn by command-line flags (passed as keyword arguments)."""
from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.core.schemas import MAX_BATCH_TEXTS

DEFAULT_WORKERS = 2
_ORIGIN = re.compile(r"https?://[^/\s:]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


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
    # The precision of the transformer blocks: float32 (exact, the same numbers on any
    # processor), or bfloat16: faster on processors that multiply it natively (AVX512_BF16,
    # AMX), and off float32's answers by a few thousandths (bench/README.md, "bfloat16 blocks").
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    insecure: bool = False  # allow a non-loopback host without authentication
    # Serving processes sharing both ports (SO_REUSEPORT), each with its own model and batcher,
    # under a parent that forwards signals and relays reloads (server/workers.py). Default 2
    # (on 2 cores, about twice the answers of one process: bench/README.md), but 1 with a rate
    # limit, whose buckets each process keeps for itself.
    workers: int | None = Field(None, ge=1, le=64)  # None: the default above
    # A worker whose event loop has not beaten for this long (hung, or stopped) is killed and
    # replaced by the supervisor (server/supervisor.py).
    heartbeat_timeout_s: float = Field(10.0, ge=1)
    # The serving version a reload or rollback switched to, which every worker (and a restarted
    # server) serves: a JSON file, by default `.bet-serving.json` in the model store
    # (server/core/serving_state.py).
    state_file: Path | None = None
    # An answer whose epistemic uncertainty is above this many nats counts as unfamiliar text
    # in the metrics (bet_answers_unfamiliar); docs/monitoring.md says how it was chosen.
    unfamiliar_epistemic_nats: float = Field(0.3, ge=0)

    # windows per forward pass (a sentence is one; a longer text alone may exceed it)
    max_batch_size: int = Field(32, ge=1)
    max_delay_ms: float = Field(5.0, ge=0)  # longest the oldest queued text waits for company
    max_queue: int = Field(1024, ge=MAX_BATCH_TEXTS)  # queued windows of text before refusing (503)
    request_timeout_s: float = Field(30.0, gt=0)  # a text waiting longer is dropped
    retry_after_s: int = Field(1, ge=0)  # advice sent with 503 / UNAVAILABLE when overloaded
    # Refuse a text at once (503 / UNAVAILABLE) when its expected wait, queue depth divided by
    # the measured throughput, is over this budget; 0 turns it off (the queue limit remains).
    # The default was chosen under overload by `make bench` (bench/README.md, "Overload").
    admission_budget_ms: float = Field(150.0, ge=0)
    # A caller refused under overload that sends again at once on the same connection is
    # answered no sooner than this after its refusal (server/core/overload.py); 0: at once.
    refusal_pace_ms: float = Field(400.0, ge=0, le=1000)
    # torch threads of each worker's forward pass (model/shards.py splits its texts over them);
    # None: the cores this process may use, divided among the workers (2 cores: 1 with two
    # workers, 2 with one; more threads than that per worker answered less, bench/README.md);
    # 0 keeps torch's default.
    torch_threads: int | None = Field(None, ge=0)
    # How long a busy thread keeps the GIL while another waits for it (Python's default: 5 ms).
    # Every torch op releases the GIL and takes it back, so a forward pass whose event loop is
    # busy waited up to this long per op; 1 ms served 6-10% more at 256 connections (bench/README.md).
    gil_switch_interval_ms: float = Field(1.0, gt=0, le=100)
    drain_timeout_s: float = Field(30.0, ge=0)  # on SIGTERM, time to finish work in flight
    # Largest request body / gRPC message: 256 texts x 10,000 characters, JSON-escaped, fit.
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    log_level: str = "INFO"
    # The model's name on the Open Inference Protocol (/v2, inference.GRPCInferenceService)
    oip_model_name: str = Field("bet", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    # The demo page for people at GET / (server/rest/static/demo.html); false: / is 404.
    demo_page: bool = True
    # Origins (scheme://host[:port], or *) whose pages may call the REST door from a browser;
    # comma-separated in BET_CORS_ORIGINS. Empty: no CORS headers at all.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Authentication (see server/core/auth.py): on when any of these five is set.
    auth_jwt_secret: SecretStr | None = Field(None, min_length=32)  # HS256 shared secret
    auth_jwt_public_key_file: FilePath | None = None  # PEM: RSA (RS256) or EC P-256 (ES256)
    auth_jwt_issuer: str | None = None  # required `iss` when set
    auth_jwt_audience: str | None = None  # required `aud` when set
    auth_api_keys_file: FilePath | None = None  # JSON lines {"id", "sha256", "scopes"}; re-read on change
    auth_jwt_leeway_s: float = Field(30.0, ge=0, le=300)  # clock skew allowed on exp and nbf
    metrics_open: bool = True  # false: GET /metrics needs the admin scope
    # One token bucket per caller, shared by both protocols; off when the rate is unset.
    rate_limit_per_second: float | None = Field(None, gt=0)
    rate_limit_burst: int | None = Field(None, ge=1)  # default: one second's worth (at least 1)
    # TLS for both servers: PEM certificate (chain) and private key, both or neither.
    tls_cert_file: FilePath | None = None
    tls_key_file: FilePath | None = None
    # Slow or idle callers: a stream (WebSocket or gRPC) idle this long is closed; a REST
    # request's head and body must each arrive in time; idle keep-alive connections close.
    stream_idle_timeout_s: float = Field(60.0, gt=0)
    header_timeout_s: float = Field(10.0, gt=0)  # request line and headers of one request
    body_timeout_s: float = Field(30.0, gt=0)
    keep_alive_timeout_s: int = Field(5, ge=1)
    max_connections: int = Field(2048, ge=16)  # REST connections and calls; past it, 503
    max_stream_message_bytes: int = Field(1024 * 1024, ge=1024)  # one WebSocket / stream message

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)):
            return value
        origins = [str(o).strip() for o in value if str(o).strip()]
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], without a path")
        return origins

    @property
    def auth_enabled(self) -> bool:
        return any(v is not None for v in (
            self.auth_jwt_secret, self.auth_jwt_public_key_file, self.auth_jwt_issuer,
            self.auth_jwt_audience, self.auth_api_keys_file))

    @model_validator(mode="after")
    def _security(self) -> Settings:
        if (self.auth_jwt_issuer or self.auth_jwt_audience) and not (
                self.auth_jwt_secret or self.auth_jwt_public_key_file):
            raise ValueError("a JWT issuer or audience needs a JWT secret or public key file")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both a certificate file and a key file")
        if self.rate_limit_burst is not None and self.rate_limit_per_second is None:
            raise ValueError("a rate limit burst needs a rate (rate_limit_per_second)")
        if self.rate_limit_per_second is not None and self.rate_limit_burst is None:
            self.rate_limit_burst = max(1, math.ceil(self.rate_limit_per_second))
        return self

    @model_validator(mode="after")
    def _processes(self) -> Settings:
        if self.workers is None:
            self.workers = DEFAULT_WORKERS if self.rate_limit_per_second is None else 1
        if self.torch_threads is None:
            self.torch_threads = max(1, usable_cores() // self.workers)
        return self

    @model_validator(mode="after")
    def _model_choice(self) -> Settings:
        if self.model is not None and self.model_store is not None:
            raise ValueError("give a checkpoint directory (model) or a model store, not both")
        if self.model_version is not None and self.model_store is None:
            raise ValueError("a pinned model version needs a model store (--model-store)")
        return self

    @model_validator(mode="after")
    def _exposure(self) -> Settings:
        if not self.insecure and not self.auth_enabled and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve on non-loopback host {self.host!r} without authentication; "
                "pass --insecure (BET_INSECURE=1) to do it anyway"
            )
        return self


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity (a container's cpuset), capped by a
    container's CPU quota (a Kubernetes CPU limit), which affinity does not show."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time per period the cgroup may use; None without a limit."""
    try:
        v2 = root / "cpu.max"  # cgroup v2: "<quota> <period>" or "max <period>"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu" / "cpu.cfs_quota_us"  # cgroup v1: -1 without a limit
        if v1.exists():
            microseconds = int(v1.read_text())
            period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
            return None if microseconds <= 0 else microseconds / period_us
    except (OSError, ValueError):
        pass
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hostport(host: str, port: int) -> str:
    """host:port, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

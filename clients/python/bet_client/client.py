"""`Client` and `AsyncClient`: one facade over both transports, with the same answers, the
same typed errors, a deadline per call and retries where the server asks for them."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from bet_client import _ops
from bet_client._connection import Connection
from bet_client._grpc import AsyncGrpcTransport, GrpcTransport
from bet_client._ops import Health
from bet_client._rest import AsyncRestTransport, RestTransport
from bet_client.errors import BetError
from bet_client.gen.models import ModelInfo, PredictBatchResponse, PredictResponse, ReloadResponse
from bet_client.retry import Deadline, RetryPolicy

T = TypeVar("T")
Transport = Literal["grpc", "rest"]


class _Base:
    def __init__(self, address: str, transport: Transport = "grpc", *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, token: str | None = None, api_key: str | None = None,
                 tls: bool = False, ca_file: str | Path | None = None) -> None:
        """`address`: "host:port" (or an http(s):// URL for REST). `timeout`: seconds per call,
        retries included, unless a call gives its own. `token`: a bearer token; `api_key`:
        an API key. `tls`: connect with TLS (also implied by `ca_file` or https://)."""
        if transport not in ("grpc", "rest"):
            raise ValueError(f"transport must be 'grpc' or 'rest', not {transport!r}")
        self.transport = transport
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._conn = Connection(address, tls=tls, ca_file=ca_file, token=token, api_key=api_key)

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else timeout)


class Client(_Base):
    """A blocking client. Use it as a context manager, or call close()."""

    def __init__(self, address: str, transport: Transport = "grpc", **kwargs: Any) -> None:
        super().__init__(address, transport, **kwargs)
        self._wire = GrpcTransport(self._conn) if transport == "grpc" else RestTransport(self._conn)

    def predict(self, text: str, *, return_uncertainty: bool | None = None, return_cot: bool | None = None,
                confidence_threshold: float | None = None, timeout: float | None = None) -> PredictResponse:
        opts = _ops.options(return_uncertainty, return_cot, confidence_threshold)
        return self._call(_ops.predict(text, opts), timeout)

    def predict_batch(self, texts: Iterable[str], *, return_uncertainty: bool | None = None,
                      return_cot: bool | None = None, confidence_threshold: float | None = None,
                      timeout: float | None = None) -> PredictBatchResponse:
        opts = _ops.options(return_uncertainty, return_cot, confidence_threshold)
        return self._call(_ops.predict_batch(list(texts), opts), timeout)

    def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        return self._call(_ops.model_info(), timeout)

    def health(self, *, timeout: float | None = None) -> Health:
        return self._call(_ops.health(), timeout)

    def reload(self, version: str | None = None, *, timeout: float | None = None) -> ReloadResponse:
        """Administration (the `admin` scope): serve `version` of the model store, or the
        server's configured choice; a failed load keeps the old version serving."""
        return self._call(_ops.reload(version), timeout)

    def stream(self, texts: Iterable[str], *, return_uncertainty: bool | None = None,
               return_cot: bool | None = None, confidence_threshold: float | None = None,
               timeout: float | None = None) -> Iterator[PredictResponse]:
        """One answer per text, in order, over one stream (gRPC PredictStream or WS
        /v1/stream); the first error is raised and ends it. `timeout` bounds the whole
        stream. Not retried."""
        opts = _ops.options(return_uncertainty, return_cot, confidence_threshold)
        requests = (_ops.stream_request(text, opts) for text in texts)
        return self._wire.stream(requests, self._deadline(timeout))

    def _call(self, op: _ops.Op[T], timeout: float | None) -> T:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._wire.unary(op, deadline.remaining())
            except BetError as error:
                wait = self.retry.delay(attempt, error, deadline.left()) if op.retry else None
                if wait is None:
                    raise
            time.sleep(wait)

    def close(self) -> None:
        self._wire.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio client: the same calls as Client, awaited. Use `async with`, or aclose()."""

    def __init__(self, address: str, transport: Transport = "grpc", **kwargs: Any) -> None:
        super().__init__(address, transport, **kwargs)
        self._wire = AsyncGrpcTransport(self._conn) if transport == "grpc" else AsyncRestTransport(self._conn)

    async def predict(self, text: str, *, return_uncertainty: bool | None = None, return_cot: bool | None = None,
                      confidence_threshold: float | None = None, timeout: float | None = None) -> PredictResponse:
        opts = _ops.options(return_uncertainty, return_cot, confidence_threshold)
        return await self._call(_ops.predict(text, opts), timeout)

    async def predict_batch(self, texts: Iterable[str], *, return_uncertainty: bool | None = None,
                            return_cot: bool | None = None, confidence_threshold: float | None = None,
                            timeout: float | None = None) -> PredictBatchResponse:
        opts = _ops.options(return_uncertainty, return_cot, confidence_threshold)
        return await self._call(_ops.predict_batch(list(texts), opts), timeout)

    async def model_info(self, *, timeout: float | None = None) -> ModelInfo:
        return await self._call(_ops.model_info(), timeout)

    async def health(self, *, timeout: float | None = None) -> Health:
        return await self._call(_ops.health(), timeout)

    async def reload(self, version: str | None = None, *, timeout: float | None = None) -> ReloadResponse:
        return await self._call(_ops.reload(version), timeout)

    def stream(self, texts: Iterable[str] | AsyncIterable[str], *, return_uncertainty: bool | None = None,
               return_cot: bool | None = None, confidence_threshold: float | None = None,
               timeout: float | None = None) -> AsyncIterator[PredictResponse]:
        """As Client.stream, with `async for`; `texts` may be an async iterable."""
        opts = _ops.options(return_uncertainty, return_cot, confidence_threshold)

        async def requests() -> AsyncIterator[dict[str, Any]]:
            if isinstance(texts, AsyncIterable):
                async for text in texts:
                    yield _ops.stream_request(text, opts)
            else:
                for text in texts:
                    yield _ops.stream_request(text, opts)

        return self._wire.stream(requests(), self._deadline(timeout))

    async def _call(self, op: _ops.Op[T], timeout: float | None) -> T:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._wire.unary(op, deadline.remaining())
            except BetError as error:
                wait = self.retry.delay(attempt, error, deadline.left()) if op.retry else None
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self._wire.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

"""gRPC transports over the generated stubs, sync and asyncio."""
from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from bet_client import errors
from bet_client._connection import Connection
from bet_client._ops import Op, to_dict
from bet_client.gen.bet.v1 import inference_pb2 as pb
from bet_client.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from bet_client.gen.models import PredictResponse
from bet_client.retry import Deadline

T = TypeVar("T")


def _channel(conn: Connection, api: Any) -> Any:
    """A channel from `api` (grpc or grpc.aio), secure when the connection asks for TLS."""
    credentials = conn.grpc_credentials()
    if credentials is None:
        return api.insecure_channel(conn.grpc_target())
    return api.secure_channel(conn.grpc_target(), credentials)


class _Stubs:
    def __init__(self, conn: Connection, channel: Any) -> None:
        self.channel = channel
        self.metadata = tuple(conn.headers().items())
        self._stubs = {"Inference": pb_grpc.InferenceStub(channel), "Health": health_pb2_grpc.HealthStub(channel)}

    def method(self, rpc: str) -> Callable[..., Any]:
        service, name = rpc.split(".")
        return getattr(self._stubs[service], name)


def _answer(reply: pb.PredictResponse) -> PredictResponse:
    return PredictResponse.model_validate(to_dict(reply))


class GrpcTransport:
    def __init__(self, conn: Connection) -> None:
        self._stubs = _Stubs(conn, _channel(conn, grpc))

    def unary(self, op: Op[T], timeout: float) -> T:
        try:
            reply = self._stubs.method(op.rpc)(op.message, timeout=timeout, metadata=self._stubs.metadata)
        except grpc.RpcError as exc:
            raise errors.from_grpc(exc) from None
        return op.from_pb(reply)

    def stream(self, requests: Iterable[dict[str, Any]], deadline: Deadline) -> Iterator[PredictResponse]:
        call = self._stubs.method("Inference.PredictStream")(
            (pb.PredictRequest(**r) for r in requests), timeout=deadline.remaining(), metadata=self._stubs.metadata)
        try:
            for reply in call:
                yield _answer(reply)
        except grpc.RpcError as exc:
            raise errors.from_grpc(exc) from None
        finally:
            call.cancel()

    def close(self) -> None:
        self._stubs.channel.close()


class AsyncGrpcTransport:
    """The asyncio channel is made on first use, inside the loop that will use it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lazy: _Stubs | None = None

    @property
    def _stubs(self) -> _Stubs:
        if self._lazy is None:
            self._lazy = _Stubs(self._conn, _channel(self._conn, grpc.aio))
        return self._lazy

    async def unary(self, op: Op[T], timeout: float) -> T:
        try:
            reply = await self._stubs.method(op.rpc)(op.message, timeout=timeout, metadata=self._stubs.metadata)
        except grpc.RpcError as exc:
            raise errors.from_grpc(exc) from None
        return op.from_pb(reply)

    async def stream(self, requests: AsyncIterable[dict[str, Any]], deadline: Deadline) -> AsyncIterator[PredictResponse]:
        async def messages() -> AsyncIterator[pb.PredictRequest]:
            async for r in requests:
                yield pb.PredictRequest(**r)

        call = self._stubs.method("Inference.PredictStream")(
            messages(), timeout=deadline.remaining(), metadata=self._stubs.metadata)
        try:
            async for reply in call:
                yield _answer(reply)
        except grpc.RpcError as exc:
            raise errors.from_grpc(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        if self._lazy is not None:
            await self._lazy.channel.close()

"""Builds the gRPC server: the Inference and Open Inference servicers, standard health and
reflection, each method wrapped once to give every call a request id, a log line and metrics."""
from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from server.core import auth, telemetry, tracing
from server.core.metrics import Metrics
from server.core.overload import Refusals
from server.core.reload import Reloader
from server.core.service import InferenceService
from server.errors import Overloaded, ServiceError
from server.grpc.converters import Undecodable, abort, safe_deserializer, to_status
from server.grpc.gen.bet.v1 import inference_pb2 as pb
from server.grpc.gen.bet.v1 import inference_pb2_grpc as pb_grpc
from server.grpc.gen.inference import open_inference_grpc_pb2_grpc as oip_pb_grpc
from server.grpc.oip import SERVICE_NAME as OIP_SERVICE_NAME
from server.grpc.oip import OipServicer
from server.grpc.servicer import InferenceServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name
_PREDICT_METHODS = frozenset(("Predict", "PredictBatch", "ModelInfer"))  # refused early under overload


class _Tracking:
    """Wraps each method's handler once, when it is registered (an interceptor would build a
    wrapper per call): the wrapper reads the request safely, returns x-request-id in the
    initial metadata, tracks the call (one log line, metrics) and has the core's Guard admit
    it (credentials, scope, rate limit) unless it is health or reflection. A prediction the
    core would refuse now gets its fast no first, before its message is deserialized."""

    def __init__(
        self, metrics: Metrics, max_bytes: int, guard: auth.Guard, max_stream_bytes: int, refusals: Refusals,
    ) -> None:
        self._metrics = metrics
        self._refusals = refusals  # the fast no (server/core/overload.py)
        self._max_bytes = max_bytes
        self._guard = guard
        self._max_stream_bytes = max_stream_bytes  # one message of a stream

    def wrap(self, path: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        method = path.rsplit("/", 1)[-1]
        metrics, guard, refusals = self._metrics, self._guard, self._refusals
        needed = auth.grpc_scope(path)
        charge = not handler.request_streaming  # a stream is charged per message (by the core)
        refusable = method in _PREDICT_METHODS

        async def admit(context: grpc.aio.ServicerContext, metadata: dict[str, Any]) -> None:
            if needed is None:
                return
            credentials = auth.Credentials(
                authorization=_text(metadata.get(auth.AUTHORIZATION)),
                api_key=_text(metadata.get(auth.API_KEY)), client=_peer_host(context.peer()))
            try:
                guard.admit(credentials, needed, charge=charge)
            except ServiceError as error:
                await abort(context, error)

        if handler.request_streaming:  # each message read by grpc, through the safe reader
            changes: dict[str, Any] = {"request_deserializer": safe_deserializer(
                handler.request_deserializer, self._max_stream_bytes) if handler.request_deserializer else None}
            read = None
        else:  # the message's bytes reach the wrapper, which reads them after the fast no
            changes = {"request_deserializer": None}
            read = safe_deserializer(handler.request_deserializer, self._max_bytes) \
                if handler.request_deserializer else None

        behavior: Callable[[Any, grpc.aio.ServicerContext], Any]  # an async generator or a coroutine
        if handler.response_streaming:
            inner = handler.stream_stream or handler.unary_stream

            async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                metadata = dict(context.invocation_metadata() or ())
                if read is not None:
                    request = read(request)
                with telemetry.track(metrics, "grpc", method, await _begin(context, metadata),
                                     tracing.carrier(metadata)):
                    await admit(context, metadata)
                    if isinstance(request, Undecodable):
                        await abort(context, request.error)
                    async for response in inner(request, context):
                        yield response

            behavior = streaming
        else:
            inner = handler.stream_unary or handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                metadata = dict(context.invocation_metadata() or ())
                if refusable:
                    error = refusals.refusal()
                    # with authentication on, a call without credentials is answered 401's way first
                    if error is not None and (not guard.authenticator.enabled
                                              or auth.AUTHORIZATION in metadata or auth.API_KEY in metadata):
                        return await _refuse(refusals, context, method, error, metadata)
                if read is not None:
                    request = read(request)
                with telemetry.track(metrics, "grpc", method, await _begin(context, metadata),
                                     tracing.carrier(metadata)):
                    await admit(context, metadata)
                    if isinstance(request, Undecodable):  # whichever method: nothing to answer
                        await abort(context, request.error)
                    return await inner(request, context)

            behavior = unary

        kind = ("stream" if handler.request_streaming else "unary") + "_" + (
            "stream" if handler.response_streaming else "unary")
        return handler._replace(**changes, **{kind: behavior})


class _Registry:
    """Stands in for the server while the generated `add_*_to_server` functions register a
    service: it hands the server each method's handler wrapped by `_Tracking`. The generated
    code registers every service twice (a generic handler and its registered methods); the
    wrapped methods serve both, and `check` makes sure no service came only the first way."""

    def __init__(self, server: grpc.aio.Server, tracking: _Tracking) -> None:
        self._server = server
        self._tracking = tracking
        self._generic: set[str] = set()
        self._registered: set[str] = set()

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._generic.update(handler.service_name() for handler in handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: self._tracking.wrap(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self._server.add_registered_method_handlers(service, wrapped)
        self._registered.add(service)

    def check(self) -> None:
        if unwrapped := self._generic - self._registered:
            raise RuntimeError(f"services registered without their methods, so not wrapped: {sorted(unwrapped)}")


async def _begin(context: grpc.aio.ServicerContext, metadata: dict[str, Any]) -> str:
    """Sends the call's x-request-id (the caller's, or a new one) in the initial metadata."""
    request_id = telemetry.request_id_from(_text(metadata.get(telemetry.REQUEST_ID_HEADER)))
    await context.send_initial_metadata(((telemetry.REQUEST_ID_HEADER, request_id),))
    return request_id


async def _refuse(refusals: Refusals, context: grpc.aio.ServicerContext, method: str, error: Overloaded,
                  metadata: dict[str, Any]) -> None:
    """Answers `error` without reading the request or raising: the status, its RetryInfo and
    Retry-After set on the context."""
    start = time.perf_counter()
    status = _status_of(error.detail, error.retry_after_s)
    await _begin(context, metadata)
    context.set_trailing_metadata(status.trailing_metadata)
    context.set_code(status.code)
    context.set_details(status.details)
    refusals.refused("grpc", method, time.perf_counter() - start)


@functools.lru_cache(maxsize=256)
def _status_of(detail: str, retry_after_s: int | None) -> grpc.Status:
    return to_status(Overloaded(detail, retry_after_s=retry_after_s))


def _text(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _peer_host(peer: str) -> str:
    """"ipv4:127.0.0.1:5000" -> "127.0.0.1"; "ipv6:[::1]:5000" -> "::1" (as REST names it)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0].strip("[]")
    return peer


def create_grpc_server(
    service: InferenceService, metrics: Metrics, *, address: str, max_request_bytes: int,
    guard: auth.Guard | None = None, max_stream_message_bytes: int | None = None,
    tls: tuple[bytes, bytes] | None = None,
    reloader: Reloader | None = None, shared_port: bool = False, oip_model_name: str = "bet",
    refusals: Refusals | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Returns the server (not started), the port it bound (address may end in :0) and its
    health servicer, which reports NOT_SERVING until the caller says otherwise.
    `shared_port`: one of several worker processes on this port. `refusals`: the fast no's
    (the app's, paced; unpaced ones of `service` when not given)."""
    server = grpc.aio.server(
        options=[
            # grpc's own limit (it answers RESOURCE_EXHAUSTED past it) sits above ours, so
            # messages a little over ours get INVALID_ARGUMENT from the table.
            ("grpc.max_receive_message_length", 2 * max_request_bytes),
            ("grpc.max_send_message_length", 2 * max_request_bytes),
            # grpc turns SO_REUSEPORT on by default, which would let a second server bind a
            # port in use without an error; only worker processes share the port on purpose
            ("grpc.so_reuseport", int(shared_port)),
        ],
    )
    tracking = _Tracking(metrics, max_request_bytes, guard or auth.Guard.open(metrics.registry),
                         max_stream_message_bytes or max_request_bytes,
                         refusals or Refusals(service, metrics, pace_s=0))
    registry: Any = _Registry(server, tracking)  # what the generated functions call on a server
    pb_grpc.add_InferenceServicer_to_server(InferenceServicer(service, reloader), registry)
    oip_pb_grpc.add_GRPCInferenceServiceServicer_to_server(OipServicer(service, oip_model_name), registry)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registry)
    names = (SERVICE_NAME, OIP_SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME)
    # what reflection.enable_server_reflection does for an aio server, through the registry
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(names), registry)
    registry.check()
    if tls is None:
        port = server.add_insecure_port(address)
    else:  # (certificate chain, private key), PEM
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    return server, port, health_servicer

"""Builds the gRPC server: the Inference servicer, standard health and reflection, and an
interceptor that gives every call a request id, a log line and metrics."""
from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

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


class _Tracking(grpc.aio.ServerInterceptor):
    """Wraps each handler: reads requests safely, returns x-request-id in the initial
    metadata, tracks the call (one log line, metrics) and has the core's Guard admit it
    (credentials, scope, rate limit) unless it is health or reflection."""

    def __init__(
        self, metrics: Metrics, max_bytes: int, guard: auth.Guard, max_stream_bytes: int,
        refusals: Refusals,
    ) -> None:
        self._metrics = metrics
        self._refusals = refusals  # the fast no (server/core/overload.py)
        self._max_bytes = max_bytes
        self._guard = guard
        self._max_stream_bytes = max_stream_bytes  # one message of a stream

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method.rsplit("/", 1)[-1]
        metadata = dict(details.invocation_metadata or ())
        if method in _PREDICT_METHODS:
            error = self._refusals.refusal()
            # with authentication on, a call without credentials is answered 401's way first
            if error is not None and (not self._guard.authenticator.enabled
                                      or auth.AUTHORIZATION in metadata or auth.API_KEY in metadata):
                return _fast_no(self._refusals, method, error, metadata.get(telemetry.REQUEST_ID_HEADER))
        handler = await continuation(details)
        if handler is None:
            return None
        given = metadata.get(telemetry.REQUEST_ID_HEADER)
        metrics = self._metrics
        trace_context = tracing.carrier(metadata)
        needed = auth.grpc_scope(details.method)
        guard = self._guard

        async def admit(context: grpc.aio.ServicerContext) -> None:
            """A stream is charged per message (by the core), not for opening."""
            if needed is None:
                return
            credentials = auth.Credentials(
                authorization=_text(metadata.get(auth.AUTHORIZATION)),
                api_key=_text(metadata.get(auth.API_KEY)), client=_peer_host(context.peer()))
            try:
                guard.admit(credentials, needed, charge=not handler.request_streaming)
            except ServiceError as error:
                await abort(context, error)

        async def begin(context: grpc.aio.ServicerContext) -> str:
            request_id = telemetry.request_id_from(given)
            await context.send_initial_metadata(((telemetry.REQUEST_ID_HEADER, request_id),))
            return request_id

        behavior: Callable[[Any, grpc.aio.ServicerContext], Any]  # an async generator or a coroutine
        if handler.response_streaming:
            inner = handler.stream_stream or handler.unary_stream

            async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                with telemetry.track(metrics, "grpc", method, await begin(context), trace_context):
                    await admit(context)
                    async for response in inner(request, context):
                        yield response

            behavior = streaming
        else:
            inner = handler.stream_unary or handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with telemetry.track(metrics, "grpc", method, await begin(context), trace_context):
                    await admit(context)
                    if isinstance(request, Undecodable):  # whichever method: nothing to answer
                        await abort(context, request.error)
                    return await inner(request, context)

            behavior = unary

        kind = ("stream" if handler.request_streaming else "unary") + "_" + (
            "stream" if handler.response_streaming else "unary")
        return handler._replace(
            request_deserializer=safe_deserializer(
                handler.request_deserializer,
                self._max_stream_bytes if handler.request_streaming else self._max_bytes)
            if handler.request_deserializer else None,
            **{kind: behavior},
        )


def _fast_no(refusals: Refusals, method: str, error: Overloaded, given: str | bytes | None) -> Any:
    """A handler that answers `error` without reading the request (no deserializer) or
    raising: the status, its RetryInfo and Retry-After set on the context."""
    status = _status_of(error.detail, error.retry_after_s)

    async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> None:
        start = time.perf_counter()
        await context.send_initial_metadata(((telemetry.REQUEST_ID_HEADER, telemetry.request_id_from(_text(given))),))
        context.set_trailing_metadata(status.trailing_metadata)
        context.set_code(status.code)
        context.set_details(status.details)
        refusals.refused("grpc", method, time.perf_counter() - start)

    return grpc.unary_unary_rpc_method_handler(refuse)


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
        interceptors=[_Tracking(metrics, max_request_bytes, guard or auth.Guard.open(metrics.registry),
                               max_stream_message_bytes or max_request_bytes,
                               refusals or Refusals(service, metrics, pace_s=0))],
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
    pb_grpc.add_InferenceServicer_to_server(InferenceServicer(service, reloader), server)
    oip_pb_grpc.add_GRPCInferenceServiceServicer_to_server(OipServicer(service, oip_model_name), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, OIP_SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )
    if tls is None:
        port = server.add_insecure_port(address)
    else:  # (certificate chain, private key), PEM
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
    return server, port, health_servicer

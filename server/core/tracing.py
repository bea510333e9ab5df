"""Optional OpenTelemetry tracing, off by default. With `BET_TRACING=1` (and the `tracing`
extra installed: `pip install 'bet[tracing]'`), every request on either door is one span
(`bet.protocol`, `bet.method`, `bet.outcome`, `bet.request_id`, `bet.model_version`),
joined to the caller's trace when it sends a W3C `traceparent`; a reload is a span too.
Spans go to the OTLP exporter, configured by the standard `OTEL_EXPORTER_OTLP_*` variables.
Off, nothing of OpenTelemetry is imported and a span costs one `if`."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

_NO_SPAN = nullcontext(None)


class Tracing:
    """The tracer of one server; `Tracing()` traces nothing."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self._provider = provider  # flushed and shut down by close()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def with_exporter(cls, exporter: Any, service_name: str = "bet") -> Tracing:
        """Spans batched to `exporter` (an OpenTelemetry SpanExporter) by a provider of this
        server's own, so that it never changes the process's global provider."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider.get_tracer("bet"), provider)

    @classmethod
    def from_settings(cls, enabled: bool) -> Tracing:
        if not enabled:
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise RuntimeError(
                "tracing is on (BET_TRACING) but OpenTelemetry is not installed: "
                "pip install 'bet[tracing]'") from exc
        return cls.with_exporter(OTLPSpanExporter())

    def close(self) -> None:
        """Exports the spans still buffered (when the server stops)."""
        if self._provider is not None:
            self._provider.shutdown()

    def span(
        self, name: str, attributes: Mapping[str, Any], carrier: Mapping[str, str] | None = None
    ) -> AbstractContextManager[Any]:
        """A span around the block (None when off); `carrier` holds the caller's headers or
        metadata, from which a `traceparent` is read. Errors are the caller's to record (an
        error answer is an outcome, not an exception of the span)."""
        if self._tracer is None:
            return _NO_SPAN  # every request passes here: no generator when off
        return self._span(name, attributes, carrier)

    @contextmanager
    def _span(self, name: str, attributes: Mapping[str, Any], carrier: Mapping[str, str] | None) -> Iterator[Any]:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(dict(carrier)) if carrier else None
        with self._tracer.start_as_current_span(
            name, context=parent, attributes=_present(attributes), record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span


def carrier(headers: Mapping[Any, Any]) -> dict[str, str] | None:
    """The W3C trace context among a caller's HTTP headers (bytes) or gRPC metadata (str)."""
    found = {}
    for name in ("traceparent", "tracestate"):
        value = headers.get(name, headers.get(name.encode()))
        if value is not None:
            found[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return found or None


def finish(span: Any, attributes: Mapping[str, Any], *, failed: bool = False) -> None:
    """Adds the attributes known at the end (those not None) to `span` (None: tracing is
    off), and marks it as an error when `failed`."""
    if span is None:
        return
    span.set_attributes(_present(attributes))
    if failed:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}

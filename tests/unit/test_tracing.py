"""Tracing is off unless asked for, reads the W3C trace context from either door's headers,
and says what to install when asked for without OpenTelemetry's exporter."""
from __future__ import annotations

import importlib.util

import pytest

from server.core.tracing import Tracing, carrier, finish


def test_off_by_default_and_spans_are_nothing() -> None:
    tracing = Tracing.from_settings(False)
    assert not tracing.enabled
    with tracing.span("bet rest POST /v1/predict", {"bet.protocol": "rest"}) as span:
        assert span is None
    finish(span, {"bet.outcome": "ok"})  # nothing to do, no error
    tracing.close()


def test_carrier_reads_trace_context_from_http_headers_and_grpc_metadata() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert carrier({b"traceparent": parent.encode(), b"x-other": b"1"}) == {"traceparent": parent}
    assert carrier({"traceparent": parent, "tracestate": "a=1"}) == {"traceparent": parent, "tracestate": "a=1"}
    assert carrier({"x-request-id": "r1"}) is None


@pytest.mark.skipif(importlib.util.find_spec("opentelemetry.exporter") is not None,
                    reason="the OTLP exporter is installed")
def test_on_without_the_exporter_says_what_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"bet\[tracing\]"):
        Tracing.from_settings(True)

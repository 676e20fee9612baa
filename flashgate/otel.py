"""Optional OpenTelemetry export: a span per order in the gate, a span per batch in the worker, over OTLP/HTTP.

Off unless FLASHGATE_OTLP_ENDPOINT is set (e.g. `http://collector:4318`; spans go to
`<endpoint>/v1/traces`), and then it needs the `otel` extra (`pip install 'flashgate[otel]'`):
nothing here is imported otherwise, so an untraced pipeline pays nothing for it.

- The gate opens a SERVER span `POST /v1/orders` per order request, a child of the client's
  `traceparent` when it sent a valid one, else the root of a new trace. The order then carries
  *this span's* traceparent (flashgate/tracecontext.py): with export on, every order is traced,
  and its row's trace_id is the trace the span is in.
- The worker opens a CONSUMER span `persist batch` per batch, linked to the span of every traced
  message in it (at most MAX_LINKS), as OpenTelemetry's messaging conventions do for batches.

Spans leave through the SDK's BatchSpanProcessor (its own thread; OTEL_BSP_* variables tune it),
so a slow or absent collector never holds up an order; `shutdown()` flushes what is left.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flashgate.settings import ConfigError

if TYPE_CHECKING:
    from opentelemetry.trace import Span

ENDPOINT_VARIABLE = "FLASHGATE_OTLP_ENDPOINT"
MAX_LINKS = 128  # links of one batch span: enough to find the orders, bounded for the collector
ORDER_SPAN = "POST /v1/orders"
BATCH_SPAN = "persist batch"


def check_endpoint(endpoint: str) -> None:
    """ConfigError unless `endpoint` is empty (export off), or an http(s) URL with the `otel` extra installed."""
    if not endpoint:
        return
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{ENDPOINT_VARIABLE} must be an http:// or https:// URL (OTLP over HTTP), not {endpoint!r}")
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        raise ConfigError(f"{ENDPOINT_VARIABLE} is set, but OpenTelemetry is not: pip install 'flashgate[otel]'")


class Tracing:
    """Spans of one process, exported to `endpoint`; ConfigError if the `otel` extra is missing."""

    def __init__(self, service: str, endpoint: str) -> None:
        check_endpoint(endpoint)
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace import Link, SpanKind, StatusCode, get_current_span, set_span_in_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as e:
            raise ConfigError(
                f"{ENDPOINT_VARIABLE} is set but OpenTelemetry is not installed: pip install 'flashgate[otel]' ({e})"
            ) from None
        self._provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("flashgate")
        self._propagator = TraceContextTextMapPropagator()
        self._link, self._kind, self._in_context, self._error = Link, SpanKind, set_span_in_context, StatusCode.ERROR
        self._span_of = get_current_span

    def _context(self, traceparent: str) -> Any:
        return self._propagator.extract({"traceparent": traceparent}) if traceparent else None

    def start_order(self, traceparent: str) -> tuple[Span, str]:
        """The span of one order request (a child of `traceparent` if not ""), and its own traceparent."""
        span = self._tracer.start_span(ORDER_SPAN, context=self._context(traceparent), kind=self._kind.SERVER)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span))
        return span, carrier["traceparent"]

    def end_order(self, span: Span, *, status: int | None, code: str, order_id: str | None, request_id: str) -> None:
        """Close an order's span with what was answered (`status` None: the client left before its answer)."""
        span.set_attributes({
            "http.request.method": "POST",
            "http.route": "/v1/orders",
            "flashgate.code": code,
            "flashgate.request_id": request_id,
        })  # fmt: skip
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if order_id:
            span.set_attribute("flashgate.order_id", order_id)
        if status is not None and status >= 500:
            span.set_status(self._error)
        span.end()

    def start_batch(self, traceparents: Sequence[str | bytes], messages: int) -> Span:
        """The span of one worker batch of `messages` messages, linked to its orders' spans (their traceparents)."""
        links = []
        for raw in traceparents:
            text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
            span_context = self._span_of(self._context(text)).get_span_context()
            if span_context.is_valid:
                links.append(self._link(span_context))
                if len(links) == MAX_LINKS:
                    break
        attributes = {"messaging.batch.message_count": messages}
        return self._tracer.start_span(BATCH_SPAN, kind=self._kind.CONSUMER, links=links, attributes=attributes)

    def shutdown(self) -> None:
        """Export what is buffered, then stop (process exit)."""
        self._provider.shutdown()

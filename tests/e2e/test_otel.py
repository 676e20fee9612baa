"""OpenTelemetry export on: the gate's span per order and the worker's span per batch reach an OTLP/HTTP endpoint."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flashgate import otel
from tests.support.gatekit import gate_settings, open_sale, place_each, running_gate
from tests.support.pipeline import add_product, create_topics, start_worker, trace_ids, wait_persisted
from tests.support.poll import until
from tests.support.sales import Sale
from tests.support.stackctl import StackHandle

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP trace endpoint of this test's own: every span it receives, with its service's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        received.extend((attrs["service.name"], span) for span in scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def named(self, service: str, name: str) -> list[Any]:
        return [span for s, span in self.spans if s == service and span.name == name]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 100 ms, not 5 s (worker included)
    c = Collector()
    yield c
    c.close()


def attributes(span: Any) -> dict[str, Any]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


async def test_an_order_s_span_is_the_client_s_child_and_its_batch_links_to_it(
    stack: StackHandle, name: str, tmp_path: Path, collector: Collector
) -> None:
    topics = create_topics(stack, name, partitions=1)
    await add_product(stack.database_url, name, 10)
    await open_sale(stack, Sale(sku=name, units=10))
    worker = start_worker(stack, topics, tmp_path / "worker.log", otlp_endpoint=collector.url)
    try:
        settings = gate_settings(stack, topics.orders, otlp_endpoint=collector.url)
        async with running_gate(settings) as (client, _gate):
            ids = await place_each(client, name, {"traced": {"traceparent": f"00-{TRACE}-{PARENT}-01"}, "untraced": {}})
        # The gate's spans are out once its lifespan ended (shutdown flushes them).
        spans = {attributes(s)["flashgate.order_id"]: s for s in collector.named("flashgate-gate", otel.ORDER_SPAN)}
        traced, untraced = spans[ids["traced"]], spans[ids["untraced"]]
        assert (traced.trace_id.hex(), traced.parent_span_id.hex()) == (TRACE, PARENT)
        assert untraced.parent_span_id == b""  # no traceparent sent: the gate's span starts the trace
        assert attributes(traced)["http.response.status_code"] == 202
        assert attributes(traced)["flashgate.code"] == "accepted"

        await wait_persisted(stack.database_url, name, 2)
        # With export on every order is traced: the row keeps the trace its gate span is in.
        expected = {ids["traced"]: uuid.UUID(hex=TRACE), ids["untraced"]: uuid.UUID(bytes=untraced.trace_id)}
        assert await trace_ids(stack.database_url, name) == expected

        async def both_linked() -> bool:
            batches = collector.named("flashgate-worker", otel.BATCH_SPAN)
            return {traced.span_id, untraced.span_id} <= {link.span_id for b in batches for link in b.links}

        await until(both_linked, timeout_s=15, what="a worker batch span linked to both order spans")
    finally:
        worker.close()

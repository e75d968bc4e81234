"""A separate process that traces GenAI calls with the OpenTelemetry SDK and exports them twice.

Run as ``python -m tests.e2e.otlp_sender ENDPOINT TOKEN FEATURE [HOURS_AGO]``.
It records spans with the real ``TracerProvider`` (an agent span, a chat
span, a tool span and a plain HTTP span), started ``HOURS_AGO`` hours ago
(default 0: now), then sends the same batch twice with the SDK's OTLP/HTTP
exporter, as a retrying exporter would, and prints one JSON line: the ids it
sent and each export's result.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, Tracer


@contextlib.contextmanager
def _timed(tracer: Tracer, name: str, clock: Iterator[int]) -> Iterator[Span]:
    """A current span that starts and ends at the sender's clock, not the wall clock."""
    span = tracer.start_span(name, start_time=next(clock))
    with trace.use_span(span, end_on_exit=False):
        yield span
    span.end(end_time=next(clock))


def record(feature: str, hours_ago: float = 0.0) -> InMemorySpanExporter:
    """Trace one agent turn: invoke_agent > chat + execute_tool, and an HTTP span."""
    start = time.time_ns() - int(hours_ago * 3600 * 1e9)
    clock = itertools.count(start, 1_000_000)  # a millisecond between events
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": feature}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e-agent")
    with _timed(tracer, "invoke_agent support", clock) as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.provider.name", "anthropic")
        agent.set_attribute("app.user", "u-42")
        with _timed(tracer, "chat claude-haiku-4-5", clock) as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "claude-haiku-4-5")
            chat.set_attribute("gen_ai.usage.input_tokens", 31)
            chat.set_attribute("gen_ai.usage.output_tokens", 7)
            chat.set_attribute(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Refund?"}]}]),
            )
            chat.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "Yes, 14 days."}]}]
                ),
            )
        with _timed(tracer, "execute_tool lookup_order", clock) as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup_order")
            tool.set_attribute("gen_ai.tool.call.id", "call_1")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"order": 7}')
            tool.set_attribute("gen_ai.tool.call.result", '{"status": "shipped"}')
        with _timed(tracer, "GET /orders/7", clock) as http:
            http.set_attribute("http.request.method", "GET")
    provider.shutdown()
    return memory


def main() -> None:
    endpoint, token, feature = sys.argv[1:4]
    hours_ago = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    spans = record(feature, hours_ago).get_finished_spans()
    exporter = OTLPSpanExporter(endpoint=endpoint, headers={"Authorization": f"Bearer {token}"})
    results = [exporter.export(spans).name for _ in range(2)]
    exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
    print(
        json.dumps(
            {
                "trace_id": f"{spans[0].context.trace_id:032x}",
                "span_ids": sorted(f"{s.context.span_id:016x}" for s in spans),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()

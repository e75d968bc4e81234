"""A separate process that traces GenAI calls with the OpenTelemetry SDK and exports them twice.

Run as ``python -m tests.e2e.otlp_sender ENDPOINT TOKEN FEATURE``. It records
spans with the real ``TracerProvider`` (an agent span, a chat span, a tool
span and a plain HTTP span), then sends the same batch twice with the SDK's
OTLP/HTTP exporter, as a retrying exporter would, and prints one JSON line:
the ids it sent and each export's result.
"""

from __future__ import annotations

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def record(feature: str) -> InMemorySpanExporter:
    """Trace one agent turn: invoke_agent > chat + execute_tool, and an HTTP span."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": feature}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e-agent")
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.provider.name", "anthropic")
        agent.set_attribute("app.user", "u-42")
        with tracer.start_as_current_span("chat claude-haiku-4-5") as chat:
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
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup_order")
            tool.set_attribute("gen_ai.tool.call.id", "call_1")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"order": 7}')
            tool.set_attribute("gen_ai.tool.call.result", '{"status": "shipped"}')
        with tracer.start_as_current_span("GET /orders/7") as http:
            http.set_attribute("http.request.method", "GET")
    provider.shutdown()
    return memory


def main() -> None:
    endpoint, token, feature = sys.argv[1:4]
    spans = record(feature).get_finished_spans()
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

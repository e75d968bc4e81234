"""The GenAI semantic conventions mapped to interactions, on hand-built spans."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from continuous_eval.core.genai_spans import (
    MAX_METADATA_KEYS,
    Span,
    SpanEvent,
    is_genai,
    map_spans,
    to_interaction,
)
from continuous_eval.core.trajectory import Step, tool_calls

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
PARENT = "00f067aa0ba902b7"
FEATURES = ("continuous_eval.feature", "feature", "service.name")
START = 1_700_000_000_123_456_789
END = START + 2_500_000_000


def span(
    attributes: Mapping[str, object] | None = None,
    events: list[SpanEvent] | None = None,
    **fields: object,
) -> Span:
    base: dict[str, object] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "name": "chat claude-haiku-4-5",
        "start_unix_nano": START,
        "end_unix_nano": END,
        "parent_span_id": PARENT,
        "resource": {"service.name": "support-bot"},
        "attributes": {"gen_ai.operation.name": "chat", **(attributes or {})},
        "events": events or [],
    }
    base.update(fields)
    return Span(**base)  # type: ignore[arg-type]


def messages(*items: Mapping[str, object]) -> str:
    return json.dumps(list(items))


def test_the_current_conventions_map_ids_model_usage_times_and_texts() -> None:
    item = to_interaction(
        span(
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-haiku-4-5",
                "gen_ai.response.model": "claude-haiku-4-5-20251001",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 42,
                "gen_ai.system_instructions": json.dumps(
                    [{"type": "text", "content": "You are helpful."}]
                ),
                "gen_ai.input.messages": messages(
                    {"role": "user", "parts": [{"type": "text", "content": "first"}]},
                    {"role": "assistant", "parts": [{"type": "text", "content": "ok"}]},
                    {"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]},
                ),
                "gen_ai.output.messages": messages(
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "It ships today."}],
                        "finish_reason": "stop",
                    }
                ),
                "user.id": "u-7",
            }
        ),
        FEATURES,
    )
    assert (item.trace_id, item.span_id, item.parent_span_id) == (TRACE, SPAN, PARENT)
    assert item.feature == "support-bot"  # the resource's service.name
    assert item.name == "chat claude-haiku-4-5"
    assert item.operation == "chat"
    assert item.model == "claude-haiku-4-5-20251001"  # the response's model wins
    assert (item.input_tokens, item.output_tokens) == (120, 42)
    assert item.started_at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert item.ended_at is not None
    assert (item.ended_at - item.started_at).total_seconds() == 2.5
    assert item.input == "Where is my order?"
    assert item.output == "It ships today."
    assert item.metadata == {"user.id": "u-7"}
    assert item.error is None
    # The history's "ok" is an earlier call's output, not this span's.
    assert item.steps == (Step(kind="message", role="assistant", content="It ships today."),)


def test_tool_calls_and_results_of_the_messages_are_the_trajectory() -> None:
    item = to_interaction(
        span(
            {
                "gen_ai.input.messages": messages(
                    {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                    {
                        "role": "assistant",
                        "parts": [
                            {
                                "type": "tool_call",
                                "id": "call_1",
                                "name": "get_weather",
                                "arguments": {"city": "Paris"},
                            }
                        ],
                    },
                    {
                        "role": "tool",
                        "parts": [
                            {"type": "tool_call_response", "id": "call_1", "response": "rainy"}
                        ],
                    },
                ),
                "gen_ai.output.messages": messages(
                    {"role": "assistant", "parts": [{"type": "text", "content": "Rainy."}]}
                ),
            }
        ),
        FEATURES,
    )
    # This call was fed the result; the call itself was the previous span's output.
    assert item.steps == (
        Step(kind="tool_result", id="call_1", content="rainy"),
        Step(kind="message", role="assistant", content="Rainy."),
    )
    assert item.input == "Weather in Paris?"


def test_an_agents_spans_report_each_tool_call_once_across_the_trace() -> None:
    question: dict[str, object] = {
        "role": "user",
        "parts": [{"type": "text", "content": "Weather in Paris?"}],
    }
    call: dict[str, object] = {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "P"}}
        ],
    }
    result: dict[str, object] = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "c1", "response": 9}],
    }
    answer: dict[str, object] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": "9 degrees."}],
    }
    first = span(
        {"gen_ai.input.messages": messages(question), "gen_ai.output.messages": messages(call)},
        span_id="1111111111111111",
    )
    second = span(
        {
            "gen_ai.input.messages": messages(question, call, result),
            "gen_ai.output.messages": messages(answer),
        },
        span_id="2222222222222222",
    )
    steps = [step for s in (first, second) for step in to_interaction(s, FEATURES).steps]
    calls = tool_calls(steps)
    assert [(c.name, c.arguments, c.result) for c in calls] == [("get_weather", {"city": "P"}, 9)]
    assert steps[-1] == Step(kind="message", role="assistant", content="9 degrees.")


def test_output_with_only_tool_calls_is_kept_as_json() -> None:
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c", "name": "search", "arguments": '{"q": 1}'}],
        }
    ]
    item = to_interaction(span({"gen_ai.output.messages": json.dumps(output)}), FEATURES)
    assert json.loads(item.output) == output
    assert item.steps == (Step(kind="tool_call", name="search", id="c", arguments={"q": 1}),)
    assert item.input == ""


def test_input_without_user_text_is_the_whole_input_as_json() -> None:
    history = [
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c", "response": 3}]}
    ]
    item = to_interaction(span({"gen_ai.input.messages": history}), FEATURES)  # structured
    assert json.loads(item.input) == history


def test_the_older_event_form_maps_the_same() -> None:
    events = [
        SpanEvent("gen_ai.system.message", {"content": "Be brief."}),
        SpanEvent("gen_ai.user.message", {"content": "Weather in Paris?"}),
        SpanEvent(
            "gen_ai.assistant.message",
            {
                "tool_calls": json.dumps(
                    [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ]
                )
            },
        ),
        SpanEvent("gen_ai.tool.message", {"content": "rainy", "id": "call_1"}),
        SpanEvent(
            "gen_ai.choice",
            {
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": "Rainy, take a coat."}),
            },
        ),
        SpanEvent("exception", {"exception.message": "ignored"}),
    ]
    item = to_interaction(span({"gen_ai.system": "openai"}, events), FEATURES)
    assert item.input == "Weather in Paris?"
    assert item.output == "Rainy, take a coat."
    assert item.steps == (
        Step(kind="tool_result", id="call_1", content="rainy"),
        Step(kind="message", role="assistant", content="Rainy, take a coat."),
    )


def test_the_older_events_tool_calls_are_read_from_the_assistant_message() -> None:
    event = SpanEvent(
        "gen_ai.choice",
        {
            "message": json.dumps(
                {
                    "tool_calls": [
                        {"id": "c2", "function": {"name": "search", "arguments": '{"q": "x"}'}}
                    ]
                }
            )
        },
    )
    item = to_interaction(span({"gen_ai.system": "openai"}, [event]), FEATURES)
    assert item.steps == (Step(kind="tool_call", name="search", id="c2", arguments={"q": "x"}),)


def test_an_event_body_carried_as_a_json_attribute_is_read() -> None:
    body = json.dumps({"content": [{"type": "text", "text": "Hello"}]})
    item = to_interaction(span(events=[SpanEvent("gen_ai.user.message", {"body": body})]), FEATURES)
    assert item.input == "Hello"


def test_an_execute_tool_span_is_one_call_and_its_result() -> None:
    item = to_interaction(
        span(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_9",
                "gen_ai.tool.call.arguments": '{"city": "Oslo"}',
                "gen_ai.tool.call.result": '{"sky": "clear"}',
            }
        ),
        FEATURES,
    )
    assert item.operation == "execute_tool"
    assert item.steps == (
        Step(kind="tool_call", name="get_weather", id="call_9", arguments={"city": "Oslo"}),
        Step(kind="tool_result", name="get_weather", id="call_9", content={"sky": "clear"}),
    )
    assert json.loads(item.input) == {"city": "Oslo"}
    assert json.loads(item.output) == {"sky": "clear"}


def test_the_feature_is_the_first_attribute_present_span_before_resource() -> None:
    both = span({"feature": "checkout"}, resource={"continuous_eval.feature": "x"})
    assert to_interaction(both, FEATURES).feature == "checkout"
    resource_only = span(resource={"feature": "search", "service.name": "api"})
    assert to_interaction(resource_only, FEATURES).feature == "search"


def test_an_error_status_is_the_error() -> None:
    assert to_interaction(span(error="rate limited"), FEATURES).error == "rate limited"
    typed = span({"error.type": "timeout"}, error="")
    assert to_interaction(typed, FEATURES).error == "timeout"


def test_metadata_is_the_non_gen_ai_attributes_bounded() -> None:
    many = {f"app.k{i}": "v" * 5000 for i in range(MAX_METADATA_KEYS + 10)}
    item = to_interaction(span(many), FEATURES)
    assert len(item.metadata) == MAX_METADATA_KEYS
    assert all(isinstance(v, str) and len(v) == 2000 for v in item.metadata.values())
    assert not any(k.startswith("gen_ai.") for k in item.metadata)


def test_spans_without_gen_ai_markers_are_skipped_and_bad_ones_rejected() -> None:
    http = Span(TRACE, "1111111111111111", "GET /", START, attributes={"http.method": "GET"})
    assert not is_genai(http.attributes)
    good = span()
    no_feature = span(span_id="2222222222222222", resource={})
    bad_trace = span(trace_id="0" * 32)
    bad_span = span(span_id="xyz")
    no_start = span(span_id="3333333333333333", start_unix_nano=0)
    mapped = map_spans([http, good, no_feature, bad_trace, bad_span, no_start], FEATURES)
    assert [i.span_id for i in mapped.interactions] == [SPAN]
    assert mapped.skipped == 1
    assert mapped.rejected == {
        "no_feature": 1,
        "bad_trace_id": 1,
        "bad_span_id": 1,
        "bad_time": 1,
    }
    assert len(mapped.messages) == 4
    assert "continuous_eval.feature, feature, service.name" in mapped.messages[0]


@pytest.mark.parametrize("value", ["12", 12])
def test_token_counts_may_come_as_strings(value: object) -> None:
    assert to_interaction(span({"gen_ai.usage.input_tokens": value}), FEATURES).input_tokens == 12


def test_ids_are_lowercased_and_a_zero_parent_is_none() -> None:
    item = to_interaction(span(trace_id=TRACE.upper(), parent_span_id="0" * 16), FEATURES)
    assert item.trace_id == TRACE
    assert item.parent_span_id is None


def test_nul_characters_are_dropped_from_texts() -> None:
    attrs = {
        "gen_ai.input.messages": messages(
            {"role": "user", "parts": [{"type": "text", "content": "a\x00b"}]}
        )
    }
    assert to_interaction(span(attrs), FEATURES).input == "ab"

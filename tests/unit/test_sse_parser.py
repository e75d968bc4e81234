"""The event-stream reader follows the spec: fields, comments, multi-line data, dispatch."""

from __future__ import annotations

from continuous_eval.adapters.targets.sse import SseEvent, SseParser


def parse(*lines: str) -> list[SseEvent]:
    parser = SseParser()
    return [event for line in lines if (event := parser.feed(line)) is not None]


def test_named_event_with_multi_line_data() -> None:
    assert parse("event: step", "data: {", 'data:  "a": 1', "data: }", "") == [
        SseEvent("step", '{\n "a": 1\n}')
    ]


def test_comments_retry_and_unknown_fields_are_ignored() -> None:
    lines = (": keep-alive", "retry: 10", "colour: red", "data: x", "")
    assert parse(*lines) == [SseEvent("message", "x")]


def test_an_event_without_data_is_not_dispatched_and_its_name_does_not_leak() -> None:
    assert parse("event: ping", "", "data: y", "") == [SseEvent("message", "y")]


def test_an_event_cut_before_its_blank_line_is_discarded() -> None:
    assert parse("event: final", "data: done") == []


def test_the_id_is_kept_and_one_leading_space_only_is_dropped() -> None:
    events = parse("id: 7", "data:  two spaces", "", "data:no space", "")
    assert events == [SseEvent("message", " two spaces", "7"), SseEvent("message", "no space", "7")]


def test_a_field_without_a_colon_and_a_byte_order_mark() -> None:
    assert parse("\ufeffdata", "") == [SseEvent("message", "")]

"""The event-stream reader follows the spec: fields, comments, multi-line data, dispatch."""

from __future__ import annotations

from continuous_eval.adapters.targets.sse import SseEvent, SseParser


def parse(*lines: str) -> list[SseEvent]:
    parser = SseParser()
    return [event for line in lines if (event := parser.feed_line(line)) is not None]


def chunks(*parts: bytes) -> list[SseEvent]:
    parser = SseParser()
    return [event for part in parts for event in parser.feed(part)]


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


def test_bytes_split_into_lines_on_crlf_lf_and_cr_across_chunks() -> None:
    events = chunks(b"event: a\r", b"\ndata: 1\r\n\r", b"\ndata: 2\r\rdata: 3\n\n")
    assert events == [SseEvent("a", "1"), SseEvent("message", "2"), SseEvent("message", "3")]


def test_other_unicode_line_breaks_stay_inside_the_data() -> None:
    text = 'data: {"t": "a\u2028b\u0085c"}\n\n'.encode()
    assert chunks(text) == [SseEvent("message", '{"t": "a\u2028b\u0085c"}')]


def test_a_character_split_between_chunks_is_decoded_whole() -> None:
    encoded = "data: café\n\n".encode()
    cut = encoded.index("é".encode()) + 1
    assert chunks(encoded[:cut], encoded[cut:]) == [SseEvent("message", "café")]


def test_a_stream_cut_mid_line_dispatches_nothing() -> None:
    assert chunks(b"event: final\ndata: {", b'"output": 1}') == []

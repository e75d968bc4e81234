"""An online feature's cases: one per trace, its root's texts, every span's steps, in key order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from continuous_eval.core.interactions import Interaction, StoredInteraction
from continuous_eval.core.online_cases import (
    SPAN_HEADROOM,
    cases_from_sample,
    span_limit,
    traces_window,
)
from continuous_eval.core.suite import TraceSample, TracesDataset
from continuous_eval.core.trajectory import Step

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _span(
    row: int,
    trace: str,
    span: str,
    *,
    parent: str | None = None,
    at: int = 0,
    text_in: str = "q",
    text_out: str = "a",
    steps: tuple[Step, ...] = (),
    operation: str = "chat",
) -> StoredInteraction:
    interaction = Interaction(
        trace_id=trace,
        span_id=span,
        feature="bot",
        input=text_in,
        output=text_out,
        started_at=T0 + timedelta(seconds=at),
        parent_span_id=parent,
        operation=operation,
        model="claude-haiku-4-5",
        steps=steps,
        metadata={"tenant": "acme"},
    )
    return StoredInteraction(row, interaction, T0)


def test_one_case_per_trace_in_sample_order_with_the_trace_id_kept() -> None:
    rows = [_span(5, "b" * 32, "1" * 16), _span(2, "a" * 32, "2" * 16)]
    cases = cases_from_sample(rows, 10, truncated=False)
    assert [c.id for c in cases] == ["b" * 32, "a" * 32]
    assert [c.trace_id for c in cases] == ["b" * 32, "a" * 32]
    assert cases[0].metadata == {"tenant": "acme", "span_id": "1" * 16, "model": "claude-haiku-4-5"}


def test_the_root_gives_the_texts_and_every_span_gives_its_steps_in_start_order() -> None:
    call = Step(kind="tool_call", name="lookup", arguments={"order": 7}, id="t1")
    result = Step(kind="tool_result", id="t1", content="shipped")
    trace = "c" * 32
    rows = [
        # The agent's invocation recorded no text itself; its chat spans did.
        _span(3, trace, "a" * 16, at=0, text_in="", text_out=""),
        _span(
            4,
            trace,
            "b" * 16,
            parent="a" * 16,
            at=1,
            text_in="where is order 7?",
            text_out="",
            steps=(call,),
        ),
        # The tool span records the same call again: it counts once.
        _span(
            6, trace, "e" * 16, parent="a" * 16, at=1, text_in="", text_out="", steps=(call, result)
        ),
        _span(1, trace, "d" * 16, parent="a" * 16, at=2, text_out="It shipped.", steps=(result,)),
        _span(
            9,
            trace,
            "f" * 16,
            parent="a" * 16,
            at=3,
            text_in="{}",
            text_out="{}",
            operation="execute_tool",
        ),
    ]
    [case] = cases_from_sample(rows, 10, truncated=False)
    assert case.input == "where is order 7?"
    assert case.output == "It shipped."
    assert case.steps == (call, result)
    assert case.metadata["span_id"] == "a" * 16


def test_a_trace_that_answered_nothing_has_no_output_to_score() -> None:
    [case] = cases_from_sample([_span(1, "e" * 32, "1" * 16, text_out="")], 1, truncated=False)
    assert case.output is None


def test_the_max_is_counted_in_traces_and_a_truncated_last_trace_is_left_out() -> None:
    rows = [_span(i, f"{i:032x}", "1" * 16) for i in range(1, 6)]
    assert len(cases_from_sample(rows, 3, truncated=False)) == 3
    kept = cases_from_sample(rows, 10, truncated=True)
    assert [c.id for c in kept] == [f"{i:032x}" for i in range(1, 5)]


def test_the_window_ends_at_as_of_and_the_store_is_asked_for_headroom() -> None:
    dataset = TracesDataset(
        source="traces", feature="bot", window_hours=6, sample=TraceSample(max=50)
    )
    assert traces_window(dataset, T0) == (T0 - timedelta(hours=6), T0)
    assert span_limit(dataset) == 50 * SPAN_HEADROOM

"""The ``InteractionStore`` contract, on memory, SQLite and Postgres alike.

Each test runs on every backend (``interaction_store``), so the fake the unit
tests use and the real stores cannot drift apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from continuous_eval.core.interactions import (
    NewFeedback,
    StoredInteraction,
    sample_key,
    sample_threshold,
)
from continuous_eval.core.trajectory import Step
from continuous_eval.ports import InteractionStore
from continuous_eval.testing import DEFAULT_START, FakeClock
from tests.fixtures.interactions import interaction, interaction_store, trace_id

__all__ = ["interaction_store"]

HOUR = timedelta(hours=1)


def ids(rows: Sequence[StoredInteraction]) -> list[int]:
    return [row.id for row in rows]


# ------------------------------------------------------------------ ingestion


def test_a_resent_batch_is_stored_once_and_the_first_write_wins(
    interaction_store: InteractionStore, clock: FakeClock
) -> None:
    batch = [interaction(1), interaction(2)]
    assert interaction_store.add_interactions(batch) == 2
    clock.advance(seconds=5)
    changed = interaction(1, output="a different answer")
    assert interaction_store.add_interactions([changed, interaction(3)]) == 1
    assert interaction_store.add_interactions(batch) == 0

    stored = interaction_store.list_interactions()
    assert [s.interaction for s in stored] == [interaction(1), interaction(2), interaction(3)]
    assert [s.ingested_at for s in stored] == [DEFAULT_START] * 2 + [clock.now()]


def test_a_span_repeated_within_a_batch_counts_once(
    interaction_store: InteractionStore,
) -> None:
    assert interaction_store.add_interactions([interaction(1), interaction(1)]) == 1
    assert interaction_store.add_interactions([]) == 0
    assert len(interaction_store.list_interactions()) == 1


def test_ids_increase_and_every_field_round_trips(interaction_store: InteractionStore) -> None:
    full = interaction(
        1,
        started_at=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        ended_at=datetime(2025, 3, 1, 10, 0, 1, 654321, tzinfo=UTC),
        parent_span_id="00f067aa0ba902b7",
        name="chat claude-haiku-4-5",
        operation="chat",
        model="claude-haiku-4-5",
        input_tokens=12,
        output_tokens=34,
        steps=(
            Step(
                kind="tool_call", name="lookup", arguments={"id": 7, "deep": [1.5, None]}, id="c1"
            ),
            Step(kind="tool_result", id="c1", content={"ok": True, "rows": ["é", "ü"]}),
            Step(kind="message", role="assistant", content="done"),
        ),
        metadata={"user": "u-1", "nested": {"a": [1, 2.5, "x", None, False]}, "n": 3},
        error="rate limited",
        input='{"messages": [{"role": "user", "content": "hi"}]}',
        output="bonjour ✓",
    )
    interaction_store.add_interactions([full, interaction(2)])

    first, second = interaction_store.list_interactions()
    assert first.interaction == full
    assert first.interaction.started_at.tzinfo is not None
    assert first.interaction.started_at.utcoffset() == timedelta(0)
    assert first.ingested_at.utcoffset() == timedelta(0)
    assert first.id >= 1
    assert second.id > first.id
    assert second.interaction == interaction(2)


# -------------------------------------------------------------------- listing


def test_listing_filters_by_feature_and_a_half_open_window_and_pages_by_id(
    interaction_store: InteractionStore,
) -> None:
    interaction_store.add_interactions(
        [interaction(n, feature="support" if n % 2 else "billing") for n in range(1, 11)]
    )
    support = interaction_store.list_interactions(feature="support")
    assert [s.interaction.span_id for s in support] == [
        interaction(n).span_id for n in (1, 3, 5, 7, 9)
    ]
    window = interaction_store.list_interactions(
        since=DEFAULT_START + timedelta(minutes=3), until=DEFAULT_START + timedelta(minutes=6)
    )
    assert [s.interaction.span_id for s in window] == [interaction(n).span_id for n in (3, 4, 5)]

    page1 = interaction_store.list_interactions(limit=4)
    page2 = interaction_store.list_interactions(after_id=page1[-1].id, limit=4)
    page3 = interaction_store.list_interactions(after_id=page2[-1].id, limit=4)
    everything = interaction_store.list_interactions(limit=100)
    assert ids(page1 + page2 + page3) == ids(everything)
    assert len(page3) == 2
    assert ids(everything) == sorted(ids(everything))
    with pytest.raises(ValueError, match="limit"):
        interaction_store.list_interactions(limit=0)


def test_a_trace_comes_back_whole_by_start_time(interaction_store: InteractionStore) -> None:
    late = interaction(1, trace=1, started_at=DEFAULT_START + HOUR)
    early = interaction(2, trace=1, started_at=DEFAULT_START)
    interaction_store.add_interactions([late, interaction(3), early])
    assert [s.interaction for s in interaction_store.trace(trace_id(1))] == [early, late]
    assert interaction_store.trace(trace_id(99)) == []


def test_interaction_features_counts_rows_per_feature(interaction_store: InteractionStore) -> None:
    assert interaction_store.interaction_features() == {}
    interaction_store.add_interactions(
        [interaction(n, feature="a") for n in range(3)] + [interaction(9, feature="b")]
    )
    assert interaction_store.interaction_features() == {"a": 3, "b": 1}


# ------------------------------------------------------------------- sampling


def _fill_window(store: InteractionStore) -> None:
    store.add_interactions(
        [interaction(n, started_at=DEFAULT_START + timedelta(minutes=n)) for n in range(200)]
        + [interaction(1000 + n, feature="other") for n in range(50)]
    )


def test_a_sample_is_deterministic_lowest_keys_first_and_within_the_threshold(
    interaction_store: InteractionStore,
) -> None:
    _fill_window(interaction_store)
    start, end = DEFAULT_START, DEFAULT_START + timedelta(minutes=200)
    first = interaction_store.sample("support", start, end, 0.5, 1000)
    assert first == interaction_store.sample("support", start, end, 0.5, 1000)
    keys = [s.interaction.sample_key for s in first]
    assert keys == sorted(keys)
    assert all(key < sample_threshold(0.5) for key in keys)
    assert {s.interaction.feature for s in first} == {"support"}
    expected = sorted(
        sample_key(interaction(n).trace_id)
        for n in range(200)
        if sample_key(interaction(n).trace_id) < sample_threshold(0.5)
    )
    assert keys == expected
    assert 50 < len(first) < 150  # about half of 200


def test_a_sample_grows_with_the_rate_and_the_limit_keeps_the_lowest_keys(
    interaction_store: InteractionStore,
) -> None:
    _fill_window(interaction_store)
    start, end = DEFAULT_START, DEFAULT_START + timedelta(days=1)
    by_rate = [
        ids(interaction_store.sample("support", start, end, rate, 1000))
        for rate in (0.1, 0.3, 0.7, 1.0)
    ]
    for smaller, larger in itertools.pairwise(by_rate):
        assert set(smaller) < set(larger)
    assert len(by_rate[-1]) == 200
    limited = interaction_store.sample("support", start, end, 1.0, 10)
    assert ids(limited) == by_rate[-1][:10]
    assert interaction_store.sample("absent", start, end, 1.0, 10) == []


def test_the_sample_window_is_half_open(interaction_store: InteractionStore) -> None:
    _fill_window(interaction_store)
    start = DEFAULT_START + timedelta(minutes=10)
    end = DEFAULT_START + timedelta(minutes=20)
    found = interaction_store.sample("support", start, end, 1.0, 100)
    assert sorted(s.interaction.started_at for s in found) == [
        DEFAULT_START + timedelta(minutes=n) for n in range(10, 20)
    ]


def test_spans_of_one_trace_share_a_key_and_come_by_start_time(
    interaction_store: InteractionStore,
) -> None:
    spans = [
        interaction(n, trace=7, started_at=DEFAULT_START + timedelta(seconds=-n)) for n in range(3)
    ]
    interaction_store.add_interactions(spans)
    found = interaction_store.sample("support", DEFAULT_START - HOUR, DEFAULT_START + HOUR, 1.0, 10)
    assert [s.interaction for s in found] == list(reversed(spans))


def test_a_sample_refuses_a_bad_rate_or_limit(interaction_store: InteractionStore) -> None:
    with pytest.raises(ValueError, match="rate"):
        interaction_store.sample("support", DEFAULT_START, DEFAULT_START + HOUR, 0, 10)
    with pytest.raises(ValueError, match="limit"):
        interaction_store.sample("support", DEFAULT_START, DEFAULT_START + HOUR, 0.5, 0)


# ------------------------------------------------------------------- feedback


def test_feedback_needs_a_stored_trace_and_comes_back_in_order(
    interaction_store: InteractionStore, clock: FakeClock
) -> None:
    with pytest.raises(LookupError):
        interaction_store.add_feedback(NewFeedback(trace_id(1), "ana", score=1.0))
    interaction_store.add_interactions([interaction(1), interaction(2)])
    first = interaction_store.add_feedback(
        NewFeedback(trace_id(1), "ana", score=0.25, comment="meh", span_id=interaction(1).span_id)
    )
    clock.advance(seconds=1)
    other = interaction_store.add_feedback(NewFeedback(trace_id(2), "bo", label="wrong"))
    second = interaction_store.add_feedback(NewFeedback(trace_id(1), "bo", label="good"))

    assert first.feedback.score == 0.25
    assert first.created_at == DEFAULT_START
    assert second.created_at == clock.now()
    assert first.id < other.id < second.id
    assert interaction_store.list_feedback(trace_id(1)) == [first, second]
    assert interaction_store.list_feedback(trace_id(3)) == []
    assert interaction_store.feedback_since() == [first, other, second]
    assert interaction_store.feedback_since(after_id=first.id, limit=1) == [other]


# -------------------------------------------------------------------- deletes


def test_deleting_by_age_takes_only_older_rows_of_that_feature(
    interaction_store: InteractionStore,
) -> None:
    interaction_store.add_interactions(
        [interaction(n) for n in range(10)]
        + [interaction(100 + n, feature="other", started_at=DEFAULT_START) for n in range(3)]
    )
    cutoff = DEFAULT_START + timedelta(minutes=6)
    assert interaction_store.delete_interactions_before("support", cutoff, batch=4) == 4
    assert interaction_store.delete_interactions_before("support", cutoff, batch=4) == 2
    assert interaction_store.delete_interactions_before("support", cutoff, batch=4) == 0
    left = interaction_store.list_interactions(feature="support")
    assert left[0].interaction.started_at == cutoff  # the row at the cutoff stays
    assert [s.interaction for s in left] == [interaction(n) for n in range(6, 10)]
    assert interaction_store.interaction_features() == {"support": 4, "other": 3}


def test_deleting_over_the_cap_takes_the_oldest_rows_of_that_feature(
    interaction_store: InteractionStore,
) -> None:
    interaction_store.add_interactions([interaction(n) for n in range(10)])
    interaction_store.add_interactions([interaction(100 + n, feature="other") for n in range(5)])
    assert interaction_store.delete_interactions_over("support", keep=3, batch=5) == 5
    assert interaction_store.delete_interactions_over("support", keep=3, batch=5) == 2
    assert interaction_store.delete_interactions_over("support", keep=3, batch=5) == 0
    left = interaction_store.list_interactions(feature="support")
    assert [s.interaction for s in left] == [interaction(n) for n in (7, 8, 9)]
    assert interaction_store.delete_interactions_over("other", keep=5, batch=5) == 0
    assert interaction_store.delete_interactions_over("other", keep=0, batch=10) == 5
    assert interaction_store.interaction_features() == {"support": 3}


def test_feedback_goes_with_the_last_interaction_of_its_trace(
    interaction_store: InteractionStore,
) -> None:
    old = interaction(1, trace=1, started_at=DEFAULT_START)
    new = interaction(2, trace=1, started_at=DEFAULT_START + HOUR)
    lone = interaction(3, started_at=DEFAULT_START)
    kept = interaction(4, started_at=DEFAULT_START + HOUR)
    interaction_store.add_interactions([old, new, lone, kept])
    on_trace = interaction_store.add_feedback(NewFeedback(trace_id(1), "ana", score=1.0))
    on_lone = interaction_store.add_feedback(NewFeedback(trace_id(3), "ana", score=0.0))
    on_kept = interaction_store.add_feedback(NewFeedback(trace_id(4), "ana", score=0.5))

    assert interaction_store.delete_interactions_before("support", DEFAULT_START + HOUR, 10) == 2
    # Trace 1 still has an interaction: its feedback stays; trace 3 is gone, and its feedback.
    assert interaction_store.feedback_since() == [on_trace, on_kept]
    assert interaction_store.delete_interactions_over("support", keep=1, batch=10) == 1
    assert interaction_store.feedback_since() == [on_kept]
    assert on_lone not in interaction_store.feedback_since()


def test_deletes_refuse_bad_arguments(interaction_store: InteractionStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        interaction_store.delete_interactions_before("support", DEFAULT_START, batch=0)
    with pytest.raises(ValueError, match="keep"):
        interaction_store.delete_interactions_over("support", keep=-1, batch=10)

"""The due check and the budget rules, with time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuous_eval.core.budget import BudgetTracker, check_budget, day_start
from continuous_eval.core.due import check_due, floor_to_grid

DAY = timedelta(hours=24)
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
# hypothesis takes naive bounds and attaches the timezone strategy itself.
LOW = datetime(2000, 1, 1)  # noqa: DTZ001
HIGH = datetime(2100, 1, 1)  # noqa: DTZ001


def test_due_when_the_suite_never_ran() -> None:
    decision = check_due(None, DAY, T0)
    assert decision.due
    assert decision.slot == datetime(2026, 11, 20, tzinfo=UTC)


def test_the_boundary_is_due() -> None:
    assert check_due(T0, DAY, T0 + DAY).due


def test_just_before_the_boundary_is_not_due() -> None:
    decision = check_due(T0, DAY, T0 + DAY - timedelta(microseconds=1))
    assert not decision.due
    assert decision.slot is None


def test_just_after_the_boundary_is_due_and_the_slot_is_the_due_moment() -> None:
    decision = check_due(T0, DAY, T0 + DAY + timedelta(microseconds=1))
    assert decision.due
    assert decision.slot == T0 + DAY


def test_a_long_outage_still_claims_one_slot() -> None:
    # Down for three days: one catch-up run, at the slot after the last run.
    decision = check_due(T0, DAY, T0 + 3 * DAY + timedelta(hours=5))
    assert decision.slot == T0 + DAY


@given(
    st.datetimes(min_value=LOW, max_value=HIGH, timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=90)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=90)),
)
def test_replicas_that_read_the_same_history_claim_the_same_slot(
    last: datetime, interval: timedelta, a: timedelta, b: timedelta
) -> None:
    first, second = check_due(last, interval, last + a), check_due(last, interval, last + b)
    if first.due and second.due:
        assert first.slot == second.slot
    assert first.due == (a >= interval)


@given(
    st.datetimes(min_value=LOW, max_value=HIGH, timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)),
)
def test_grid_slots_are_stable_within_an_interval(now: datetime, interval: timedelta) -> None:
    slot = floor_to_grid(now, interval)
    assert slot <= now < slot + interval
    assert floor_to_grid(slot, interval) == slot


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_due(None, DAY, datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="positive"):
        check_due(None, timedelta(0), T0)


def test_no_cap_always_allows() -> None:
    assert check_budget(None, 1e9).allowed


def test_cap_reached_skips_and_the_boundary_counts() -> None:
    at_cap = check_budget(5.0, 5.0)
    assert not at_cap.allowed
    assert "budget reached" in at_cap.reason
    assert check_budget(5.0, 4.99).allowed


def test_unreadable_spend_goes_ahead_and_says_so() -> None:
    decision = check_budget(5.0, None)
    assert decision.allowed
    assert decision.spend_unreadable
    assert "fail-open" in decision.reason


def test_tracker_stops_once_the_cap_is_reached() -> None:
    tracker = BudgetTracker(1.0, 0.5)
    assert not tracker.exhausted
    tracker.add(0.25)
    assert not tracker.exhausted
    tracker.add(0.25)
    assert tracker.exhausted
    assert not BudgetTracker(None, 100.0).exhausted


def test_days_are_utc_days() -> None:
    assert day_start(datetime(2026, 11, 21, 23, 59, tzinfo=UTC)) == datetime(
        2026, 11, 21, tzinfo=UTC
    )

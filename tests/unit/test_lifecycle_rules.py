"""The run state machine and the outbox's rules, as pure functions (core.lifecycle, core.outbox).

Both stores apply these; the store contract tests check that they do. Here
each rule is checked alone, without a store, so a changed rule fails one
small test that names it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from continuous_eval.core.lifecycle import (
    CONTROL_REASONS,
    RUN_TYPES,
    check_limit,
    check_max_attempts,
    check_release,
    check_seconds,
    control_transition,
    duplicate_message,
    gave_up_reason,
    initial_attempt,
    lease_lost,
    require_aware,
    validate_create,
    validate_new_run,
)
from continuous_eval.core.models import (
    AlertStatus,
    ControlAction,
    Fence,
    Lease,
    NewAlert,
    NewRun,
    RunStatus,
)
from continuous_eval.core.outbox import (
    ALERT_CHANNEL_MAX,
    ALERT_KEY_MAX,
    check_settle,
    validate_alerts,
)
from continuous_eval.errors import LeaseLost

SLOT = datetime(2026, 1, 1, 6, tzinfo=UTC)


def new_run(**changes: object) -> NewRun:
    run = NewRun(
        id="r1",
        suite="support",
        run_type="scheduled",
        features=("faq",),
        cases_total=10,
        total=10,
        fingerprint="fp",
        scheduled_for=SLOT,
        idempotency_key="key-1",
    )
    return replace(run, **changes)  # type: ignore[arg-type]


def alert(**changes: object) -> NewAlert:
    row = NewAlert(
        key="support:r1:regression",
        channel="email",
        kind="regression",
        run_id="r1",
        suite="support",
        feature="faq",
        scorer="judge",
        rule="drop",
        status="pending",
        payload="{}",
        summary={"items": []},
    )
    return replace(row, **changes)  # type: ignore[arg-type]


# --- runs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target", "applies_to"),
    [
        (
            "cancel",
            RunStatus.CANCELLED,
            {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.INTERRUPTED},
        ),
        ("pause", RunStatus.PAUSED, {RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.INTERRUPTED}),
        ("resume", RunStatus.QUEUED, {RunStatus.PAUSED}),
    ],
)
def test_each_admin_action_moves_only_the_runs_it_applies_to(
    action: ControlAction, target: RunStatus, applies_to: set[RunStatus]
) -> None:
    assert control_transition(action) == (target, frozenset(applies_to))
    assert not any(s.terminal for s in applies_to)  # a finished run is never moved
    assert (CONTROL_REASONS[action] is None) == (action == "resume")


def test_an_unknown_action_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown action 'restart'; use one of \['cancel'"):
        control_transition("restart")  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.SKIPPED])
def test_a_run_is_created_running_queued_or_skipped(status: RunStatus) -> None:
    validate_create(status, None)
    assert initial_attempt(status) == (1 if status is RunStatus.RUNNING else 0)


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.PAUSED, RunStatus.FAILED])
def test_no_run_is_created_finished_or_paused(status: RunStatus) -> None:
    with pytest.raises(ValueError, match="create_run takes status running, queued, skipped"):
        validate_create(status, None)


def test_only_a_running_run_takes_a_lease_and_a_lease_must_last() -> None:
    validate_create(RunStatus.RUNNING, Lease("worker-a", 30.0))
    with pytest.raises(ValueError, match="a lease needs status 'running', not 'queued'"):
        validate_create(RunStatus.QUEUED, Lease("worker-a", 30.0))
    with pytest.raises(ValueError, match="more than 0 seconds"):
        validate_create(RunStatus.RUNNING, Lease("worker-a", 0.0))
    with pytest.raises(ValueError, match="more than 0 seconds"):
        check_seconds(-1.0)


@pytest.mark.parametrize("status", [RunStatus.PAUSED, RunStatus.INTERRUPTED, RunStatus.QUEUED])
def test_a_worker_gives_a_run_back_paused_interrupted_or_queued(status: RunStatus) -> None:
    check_release(status)


def test_a_worker_cannot_release_a_run_as_finished() -> None:
    with pytest.raises(ValueError, match="release_run takes status"):
        check_release(RunStatus.SUCCEEDED)


def test_new_runs_need_a_known_type_and_an_aware_slot() -> None:
    assert RUN_TYPES == ["scheduled", "manual"]
    validate_new_run(new_run())
    with pytest.raises(ValueError, match="run_type must be one of"):
        validate_new_run(new_run(run_type="adhoc"))
    with pytest.raises(ValueError, match="scheduled_for must be timezone-aware"):
        validate_new_run(new_run(scheduled_for=datetime(2026, 1, 1, 6)))  # noqa: DTZ001
    require_aware(None, "since")  # nothing to check


def test_limits_and_attempts_are_at_least_one() -> None:
    check_limit(1)
    check_max_attempts(1)
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        check_limit(0)
    with pytest.raises(ValueError, match="max_attempts must be at least 1, got 0"):
        check_max_attempts(0)


@pytest.mark.parametrize(
    ("previous", "why"),
    [
        (RunStatus.RUNNING, "the last worker's lease expired"),
        (RunStatus.INTERRUPTED, "the last worker was interrupted"),
        (RunStatus.QUEUED, "the last worker gave the run back"),
    ],
)
def test_giving_up_says_how_the_last_attempt_ended(previous: RunStatus, why: str) -> None:
    assert gave_up_reason(3, previous) == f"gave up after 3 attempts; {why}"


def test_duplicates_name_the_rule_they_broke() -> None:
    run = new_run()
    assert duplicate_message("id", run, "r1") == "a run with id 'r1' already exists"
    assert "idempotency key 'key-1' already belongs to run 'r0'" in duplicate_message(
        "idempotency_key", run, "r0"
    )
    assert duplicate_message("scheduled_for", run, "r0") == (
        "suite 'support' slot 2026-01-01T06:00:00+00:00 is already claimed by run 'r0'"
    )


def test_a_lost_lease_says_who_holds_the_run_now() -> None:
    error = lease_lost("r1", Fence(1, "worker-a"), RunStatus.RUNNING, 2, "worker-b")
    assert isinstance(error, LeaseLost)
    assert str(error) == (
        "run 'r1' is no longer held by attempt 1 of 'worker-a': "
        "it is running, attempt 2, owner 'worker-b'"
    )


# --- the outbox -------------------------------------------------------------------


def test_alerts_of_one_batch_keep_the_first_per_key_and_channel() -> None:
    first, again = alert(), alert(summary={"items": [1]})
    other_channel = alert(channel="webhook")
    assert validate_alerts("r1", [first, again, other_channel]) == [first, other_channel]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"run_id": "r2"}, "belongs to run 'r2', not 'r1'"),
        ({"kind": "panic"}, "alert kind must be one of"),
        ({"status": "lost"}, "alert status must be one of"),
        ({"key": ""}, f"1 to {ALERT_KEY_MAX} characters"),
        ({"key": "k" * (ALERT_KEY_MAX + 1)}, f"1 to {ALERT_KEY_MAX} characters"),
        ({"channel": "c" * (ALERT_CHANNEL_MAX + 1)}, f"1 to {ALERT_CHANNEL_MAX} characters"),
        ({"summary": {"at": object()}}, "is not JSON"),
    ],
)
def test_an_alert_no_store_may_write_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_alerts("r1", [alert(**changes)])


@pytest.mark.parametrize("status", ["sent", "pending", "dead"])
def test_a_delivery_settles_sent_pending_or_dead(status: AlertStatus) -> None:
    check_settle(status, None)
    check_settle(status, 0.0)


def test_suppression_is_not_a_delivery_outcome_and_retries_are_not_in_the_past() -> None:
    with pytest.raises(ValueError, match="settle_alert takes status sent, pending, dead"):
        check_settle("suppressed", None)
    with pytest.raises(ValueError, match="retry_in_s must be 0 or more, got -1"):
        check_settle("pending", -1.0)

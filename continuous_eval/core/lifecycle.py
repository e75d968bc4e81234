"""The run state machine: which statuses a run may be created in, written in, released in,
adopted from and moved to by an admin, and the errors every store raises the same way.

Pure rules, no storage: ``adapters.db.store.SqlRunStore`` turns them into
guarded SQL updates and ``continuous_eval.testing.InMemoryRunStore`` applies
them to dictionaries, so both refuse and decide the same things the same way
and a rule changes in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import get_args

from continuous_eval.core.models import ControlAction, Fence, Lease, NewRun, RunStatus, RunType
from continuous_eval.errors import Conflict, LeaseLost, RunNotFound

RUN_TYPES: list[str] = list(get_args(RunType))
"""The run types a store accepts (the ``run_type`` column's check constraint too)."""

TERMINAL_STATUSES = tuple(status.value for status in RunStatus if status.terminal)
"""Statuses a run never leaves; the guarded updates below refuse to touch them."""

CREATE_STATUSES = (RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.SKIPPED)
"""Statuses ``create_run`` accepts: claimed and running, waiting for a worker, or skipped."""

FENCED_STATUSES = (RunStatus.RUNNING.value, RunStatus.PAUSED.value)
"""Statuses in which the worker holding the lease may still write.

Paused is included: an admin's pause lets the worker store the cases it has
in flight, then release the run.
"""

RELEASE_STATUSES = (RunStatus.PAUSED, RunStatus.INTERRUPTED, RunStatus.QUEUED)
"""Statuses a worker may give a run back in (``release_run``)."""

WAITING_STATUSES = (RunStatus.QUEUED.value, RunStatus.INTERRUPTED.value)
"""Statuses any worker may adopt at once; ``running`` only once its lease expired."""

CONTROL_TRANSITIONS: Mapping[str, tuple[RunStatus, frozenset[RunStatus]]] = {
    "cancel": (
        RunStatus.CANCELLED,
        frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.INTERRUPTED}),
    ),
    "pause": (
        RunStatus.PAUSED,
        frozenset({RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.INTERRUPTED}),
    ),
    "resume": (RunStatus.QUEUED, frozenset({RunStatus.PAUSED})),
}
"""Per admin action: the status it sets and the statuses it applies to.

Any other status (terminal, or already where the action leads) is left alone,
so repeating an action, or racing a worker that just finished, is harmless.
"""

CONTROL_REASONS: Mapping[str, str | None] = {
    "cancel": "cancelled by an admin",
    "pause": "paused by an admin",
    "resume": None,
}
"""The ``status_reason`` each admin action leaves; resuming clears the pause's."""


def run_not_found(run_id: str) -> RunNotFound:
    """Build the error both stores raise for an unknown run id."""
    return RunNotFound(f"no run with id {run_id!r}")


def validate_new_run(new: NewRun) -> None:
    """Refuse a ``NewRun`` that no store may accept, before touching storage.

    Raises:
        ValueError: An unknown run type, or a naive ``scheduled_for`` (a bug in
            the caller, not a database failure, hence not a ``StoreError``).
    """
    if new.run_type not in RUN_TYPES:
        raise ValueError(f"run_type must be one of {RUN_TYPES}, not {new.run_type!r}")
    require_aware(new.scheduled_for, "scheduled_for")


def require_aware(value: datetime | None, name: str) -> None:
    """Raise ``ValueError`` for a naive datetime; the project's time is always aware UTC."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def check_limit(limit: int) -> None:
    """Raise ``ValueError`` unless ``limit`` is positive."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def validate_create(status: RunStatus, lease: Lease | None) -> None:
    """Refuse a status or lease ``create_run`` does not support.

    Raises:
        ValueError: A status other than running, queued or skipped, or a lease
            on a run that is not running (only a running run has a worker).
    """
    if status not in CREATE_STATUSES:
        allowed = ", ".join(s.value for s in CREATE_STATUSES)
        raise ValueError(f"create_run takes status {allowed}, not {status.value!r}")
    if lease is not None:
        if status is not RunStatus.RUNNING:
            raise ValueError(f"a lease needs status 'running', not {status.value!r}")
        check_seconds(lease.seconds)


def initial_attempt(status: RunStatus) -> int:
    """Return the attempt a new run starts with: 1 when it starts running, else 0.

    The attempt counts the workers that took the run, so a queued run's first
    adopter runs attempt 1, and a skipped slot was never attempted.
    """
    return 1 if status is RunStatus.RUNNING else 0


def check_seconds(seconds: float) -> None:
    """Raise ``ValueError`` unless a lease length is positive."""
    if not seconds > 0:
        raise ValueError(f"a lease must last more than 0 seconds, got {seconds}")


def check_release(status: RunStatus) -> None:
    """Raise ``ValueError`` unless ``status`` is one a worker may release a run in."""
    if status not in RELEASE_STATUSES:
        allowed = ", ".join(s.value for s in RELEASE_STATUSES)
        raise ValueError(f"release_run takes status {allowed}, not {status.value!r}")


def check_max_attempts(max_attempts: int) -> None:
    """Raise ``ValueError`` unless ``max_attempts`` is at least 1."""
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")


def control_transition(action: ControlAction) -> tuple[RunStatus, frozenset[RunStatus]]:
    """Return (target status, statuses it applies to) for an admin action.

    Raises:
        ValueError: An unknown action.
    """
    try:
        return CONTROL_TRANSITIONS[action]
    except KeyError:
        raise ValueError(
            f"unknown action {action!r}; use one of {sorted(CONTROL_TRANSITIONS)}"
        ) from None


def gave_up_reason(attempts: int, previous: RunStatus) -> str:
    """Say why a run was failed instead of adopted once more, the same way for every store."""
    why = {
        RunStatus.RUNNING: "the last worker's lease expired",
        RunStatus.INTERRUPTED: "the last worker was interrupted",
    }.get(previous, "the last worker gave the run back")
    return f"gave up after {attempts} attempts; {why}"


def lease_lost(
    run_id: str, fence: Fence, status: RunStatus, attempt: int, owner: str | None
) -> LeaseLost:
    """Build the error both stores raise when a fenced write finds the run no longer its own."""
    return LeaseLost(
        f"run {run_id!r} is no longer held by attempt {fence.attempt} of {fence.owner!r}: "
        f"it is {status.value}, attempt {attempt}, owner {owner!r}"
    )


def duplicate_message(conflict: Conflict, new: NewRun, existing_id: str) -> str:
    """Say which rule a duplicate run broke, the same way for every store."""
    if conflict == "id":
        return f"a run with id {new.id!r} already exists"
    if conflict == "idempotency_key":
        return f"idempotency key {new.idempotency_key!r} already belongs to run {existing_id!r}"
    slot = new.scheduled_for.isoformat() if new.scheduled_for else None
    return f"suite {new.suite!r} slot {slot} is already claimed by run {existing_id!r}"

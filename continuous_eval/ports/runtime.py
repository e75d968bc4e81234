"""What the daemon needs around runs: locks, alert channels, its tick outcomes and observers.

The events Protocols are how the service reports to metrics without
importing them; ``TickOutcome`` and ``SuiteSchedule`` are the vocabulary the
daemon and its metrics share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from continuous_eval.core.models import (
    ControlAction,
    DeliveryResult,
    RunRecord,
)
from continuous_eval.core.regression import Decision


class SuiteLock(Protocol):
    """One held lock on a suite: only its holder runs the suite, across replicas."""

    suite: str

    def check(self) -> bool:
        """Return whether the lock is still held (renews it where it is a lease). Never raises."""
        ...

    def release(self) -> None:
        """Release the lock. Idempotent, never raises, and blocking: cancellation cannot skip it."""
        ...


class SuiteLocks(Protocol):
    """Cross-process mutual exclusion per suite (Postgres advisory lock, or a SQLite lease row)."""

    def try_acquire(self, suite: str, owner: str) -> SuiteLock | None:
        """Take the suite's lock without waiting; None when another process holds it.

        A holder whose run's lease has expired (it stalled or hung) is fenced
        off first, so a stopped process cannot block a takeover forever.
        """
        ...

    def close(self) -> None:
        """Release every lock this object holds and dispose of its connections."""
        ...


class AlertChannel(Protocol):
    """One way of telling people: email through Resend, or a webhook."""

    name: str
    """The channel name stored with each alert (``email``, ``webhook``)."""

    async def deliver(
        self, key: str, payload: str, destination: str | None = None
    ) -> DeliveryResult:
        """Send the stored payload with ``key`` as its idempotency key.

        ``destination`` is the row's own address (a run's callback URL) for
        channels without a fixed one; channels with one ignore it.

        Called again with the same key and byte-identical payload after a
        failure or a crash; the provider's idempotency turns a repeat into a
        no-op. Never raises for a provider error: it returns ``retry`` or ``dead``.
        """
        ...

    async def aclose(self) -> None:
        """Close the channel's HTTP client; called once when the process is done."""
        ...


class TickOutcome(StrEnum):
    """What one suite's tick did; each is counted, none is silent."""

    RAN = "ran"
    NOT_DUE = "not_due"
    DISABLED = "disabled"
    STOPPING = "stopping"
    """The daemon is shutting down: no new run starts."""
    GATE_BUSY = "gate_busy"
    LOCKED_ELSEWHERE = "locked_elsewhere"
    CLAIM_LOST = "claim_lost"
    """Another replica claimed the same scheduled slot first."""
    BUDGET_SKIPPED = "budget_skipped"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SuiteSchedule:
    """A suite's effective schedule: the settings with the suite file's overrides applied."""

    enabled: bool
    interval: timedelta
    watchdog_s: float
    max_attempts: int


class DaemonEvents(Protocol):
    """Where the daemon reports what it did, for metrics."""

    def tick(self, suite: str, outcome: TickOutcome) -> None:
        """One suite's tick ended with ``outcome``."""
        ...

    def lock_held(self, suite: str, held: bool) -> None:
        """This process took or released the suite's lock."""
        ...

    def budget_unreadable(self) -> None:
        """Today's judge spend could not be read; the run went ahead (fail-open)."""
        ...

    def run_finished(self, run: RunRecord) -> None:
        """A run this process executed reached its end (or was released)."""
        ...


class AlertEvents(Protocol):
    """Where alert outcomes are counted."""

    def alert(self, channel: str, status: str) -> None:
        """One alert reached ``status`` on ``channel``."""
        ...

    def regression(self, suite: str, decision: Decision) -> None:
        """The detector found a regression (or drift, or judge drift) that opened or worsened."""
        ...


class RunLauncher(Protocol):
    """What the API needs of the daemon (``service.daemon.Daemon`` provides it)."""

    async def start_manual(
        self,
        suite: str,
        features: Sequence[str] = (),
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        spec_hash: str | None = None,
        callback_url: str | None = None,
    ) -> RunRecord:
        """Start a manual run in the background; raise ``GateBusy`` when the suite is busy."""
        ...

    async def control(self, run_id: str, action: ControlAction) -> RunRecord:
        """Cancel, pause or resume a run and return its resulting state."""
        ...


class JobEvents(Protocol):
    """Where scheduler mishaps are counted."""

    def job_event(self, kind: str) -> None:
        """Count one ``missed``, ``error`` or ``max_instances`` event of the tick job."""
        ...


class RetentionEvents(Protocol):
    """Where the retention job's deletes and failures are counted."""

    def retention_deleted(self, kind: str, feature: str, count: int) -> None:
        """Count ``count`` rows deleted: ``kind`` is ``interactions`` or ``results``;
        ``feature`` is the interactions' feature (empty for results, deleted per run)."""
        ...

    def retention_failed(self) -> None:
        """Count one retention pass that raised (logged; the daemon carries on)."""
        ...

    def interactions_stored(self, counts: Mapping[str, int]) -> None:
        """The rows each feature has after a pass (read at its start, less what it deleted)."""
        ...

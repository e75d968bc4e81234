"""The run store, split along its seams: lifecycle and leases, results, history, outbox, lookup.

Each consumer asks for the narrowest seam it uses (the alert dispatcher only
the outbox, the detector only the history and lookups); ``RunStore`` joins
them for the wiring that needs the whole store. ``adapters.db`` implements
them on SQL, ``continuous_eval.testing`` in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol

from continuous_eval.core.case_steps import StoredStep
from continuous_eval.core.models import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    CaseResult,
    ControlAction,
    Fence,
    Lease,
    NewAlert,
    NewRun,
    ProgressDelta,
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
)
from continuous_eval.core.regression import Decision, KeyState, ScoreKey
from continuous_eval.core.trajectory import Step


class RunLifecycle(Protocol):
    """Runs and their leases: create, adopt, renew, release, finish, control."""

    def create_run(
        self, new: NewRun, *, lease: Lease | None = None, status: RunStatus = RunStatus.RUNNING
    ) -> RunRecord:
        """Insert a run and return it.

        With ``lease``, the run is owned from the start (attempt 1, owner,
        expiry = database now + seconds). ``status`` may be ``skipped`` (a
        scheduled slot recorded as skipped, with ``finished_at`` set) or
        ``queued``. Raises ``DuplicateRun`` when the id, the idempotency key or
        (suite, scheduled_for) is taken: a double fire of a slot is a no-op.
        """
        ...

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        reason: str | None,
        aggregates: Sequence[ScoreAggregate],
        *,
        fence: Fence | None = None,
        alerts: Sequence[NewAlert] = (),
        decisions: Sequence[Decision] = (),
    ) -> RunRecord:
        """Store the aggregates, the final status, the decisions and the alerts in one transaction.

        Clears the lease. With ``fence``, guarded like ``save_results``
        (``LeaseLost``). An alert whose (key, channel) already exists is left
        as it is: writing the outbox twice never sends twice.
        """
        ...

    def renew_lease(self, run_id: str, fence: Fence, seconds: float) -> RunRecord:
        """Extend the lease to database now + ``seconds`` and stamp the heartbeat.

        Returns the run, whose status tells the worker whether an admin paused
        it. Raises ``LeaseLost`` when the run is no longer ``running`` or
        ``paused`` with this attempt and owner (taken over, cancelled, finished).
        """
        ...

    def release_run(
        self, run_id: str, fence: Fence, status: RunStatus, reason: str | None = None
    ) -> RunRecord:
        """Give the run up without finishing it: set ``status`` (``paused``, ``interrupted``
        or ``queued``) and clear the lease, guarded by ``fence`` (``LeaseLost``).

        An ``interrupted`` or ``queued`` run is adoptable at once by any worker.
        """
        ...

    def adoptable_run(self, suite: str) -> RunRecord | None:
        """Return the oldest run of the suite that a worker may take: ``queued`` or
        ``interrupted``, or ``running`` with a lease that expired by the database's clock."""
        ...

    def adopt_run(
        self, run_id: str, expected_attempt: int, lease: Lease, max_attempts: int
    ) -> RunRecord | None:
        """Take a run over: attempt + 1, status ``running``, the new lease; counters are
        recounted from the stored results so nothing is counted twice.

        Guarded on the run still being adoptable with ``expected_attempt``;
        returns None when another worker won. When attempt + 1 would exceed
        ``max_attempts`` the run is ended ``failed`` with the reason instead,
        and that terminal run is returned.
        """
        ...

    def control_run(self, run_id: str, action: ControlAction) -> RunRecord:
        """Apply an admin operation and return the run.

        cancel: queued, running, paused or interrupted -> cancelled (terminal,
        lease cleared; a worker notices at its next write and stops).
        pause: running -> paused (the worker finishes the cases in flight and
        releases the run); queued or interrupted -> paused.
        resume: paused -> queued (any worker adopts it).
        A terminal run, or one already in the asked state, is returned unchanged.
        """
        ...


class ResultSink(Protocol):
    """Where a run's results and aggregates go, and what the writer reads back of them."""

    def save_results(
        self,
        run_id: str,
        results: Sequence[CaseResult],
        delta: ProgressDelta,
        *,
        fence: Fence | None = None,
    ) -> None:
        """Upsert results (one per run x feature x case x scorer) and add the counts, atomically.

        With ``fence``, writes only while the run is ``running`` or ``paused``
        with that attempt and owner; otherwise raises ``LeaseLost`` and writes
        nothing.
        """
        ...

    def iter_scores(self, run_id: str) -> Iterator[tuple[str, str, ResultStatus, float | None]]:
        """Yield (feature, scorer, status, score) for every result, grouped by feature, scorer."""
        ...

    def case_result_counts(self, run_id: str) -> dict[tuple[str, str], int]:
        """Return stored results per (feature, case_id): finished cases are not run again."""
        ...

    def replace_aggregates(self, run_id: str, aggregates: Sequence[ScoreAggregate]) -> None:
        """Store a run's aggregates, whatever its status (a cancelled run keeps what finished)."""
        ...


class CaseStepStore(Protocol):
    """The steps agent targets streamed, per case of a run: written live, read back whole."""

    def save_case_steps(
        self, run_id: str, feature: str, case_id: str, steps: Sequence[Step], *, first: int = 0
    ) -> None:
        """Store ``steps`` at positions ``first``, ``first + 1``... of the case, atomically.

        ``first == 0`` replaces whatever the case had (a retried case starts
        over); a later ``first`` adds to it, replacing a step already stored
        at the same position. Steps are not fenced: a run taken over repeats
        its unfinished cases, which start again from 0.

        Raises:
            RunNotFound: No such run; nothing was written.
        """
        ...

    def case_steps(self, run_id: str, feature: str, case_id: str) -> list[Step]:
        """A case's steps in order; empty when it streamed none.

        Raises:
            RunNotFound: No such run.
        """
        ...

    def steps_after(self, run_id: str, *, after_id: int, limit: int) -> list[StoredStep]:
        """Up to ``limit`` of the run's steps with id > ``after_id``, by id (for live streams)."""
        ...

    def newest_step_id(self, run_id: str) -> int:
        """The id of the run's newest stored step, 0 when none: where a live stream starts."""
        ...


class RunHistory(Protocol):
    """What the due check, the budget, the detector and the outage check read.

    ``latest_alert`` is here, not in ``AlertOutbox``: the planner reads the
    outbox's past to know whether an outage is open, and never delivers.
    """

    def db_now(self) -> datetime:
        """Return the store's now (aware UTC), the clock its leases, claims and stamps are on.

        In production the database's clock: leases never trust a replica's
        clock. A store built on an injected clock (tests) returns that clock's.
        """
        ...

    def newest_scheduled(self, suite: str) -> RunRecord | None:
        """Return the suite's scheduled run with the latest ``started_at`` (any status).

        The due check's query; served by the (suite, run_type, started_at) index.
        """
        ...

    def judge_spend_since(self, since: datetime) -> float:
        """Return the judge cost in USD of runs started at or after ``since``."""
        ...

    def scheduled_history(self, suite: str, *, before: datetime, limit: int) -> list[RunRecord]:
        """Return the suite's ``succeeded`` scheduled runs started before ``before``, newest first.

        The detector's baselines: manual, failed, cancelled and skipped runs never are.
        """
        ...

    def decision_states(self, run_ids: Sequence[str]) -> dict[str, dict[ScoreKey, KeyState]]:
        """Return what the detector carries forward from each run's decisions, per key.

        A run with no stored decisions is absent from the result.
        """
        ...

    def case_scores(self, run_id: str) -> dict[tuple[str, str], dict[str, float]]:
        """Return the scored (``ok``) results of a run: (feature, scorer) -> case id -> score."""
        ...

    def latest_alert(
        self, suite: str, feature: str, scorer: str, *, kind: AlertKind
    ) -> AlertRecord | None:
        """Return the newest alert of that kind for a feature x scorer (any channel, any status)."""
        ...


class AlertOutbox(Protocol):
    """The outbox as its deliverers and readers see it: claim what is due, settle, list."""

    def claim_due_alerts(self, owner: str, lease_s: float, limit: int) -> list[AlertRecord]:
        """Claim up to ``limit`` pending alerts that are due, oldest first, and return them.

        Due: ``next_attempt_at`` is null or past, and no live claim (by the
        database's clock). A claim lasts ``lease_s``; a replica that dies while
        sending leaves a claim that expires, and the alert is tried again with
        the same key and payload.
        """
        ...

    def settle_alert(
        self,
        alert_id: int,
        owner: str,
        *,
        status: AlertStatus,
        provider_id: str | None = None,
        error: str | None = None,
        retry_in_s: float | None = None,
    ) -> bool:
        """Record a delivery attempt's outcome; False when the claim was lost (nothing written).

        attempts + 1 and the claim cleared; ``sent`` stamps ``sent_at`` and
        ``provider_id``; ``pending`` schedules the next try ``retry_in_s``
        from the database's now; ``dead`` keeps ``error`` as the reason.
        """
        ...

    def list_alerts(
        self, *, status: AlertStatus | None = None, suite: str | None = None, limit: int = 50
    ) -> list[AlertRecord]:
        """Return alerts newest first."""
        ...


class RunLookup(Protocol):
    """Runs by id, prefix or filter, with what was stored at their end: the store's own reads."""

    def get_run(self, run_id: str) -> RunRecord:
        """Return one run; raise ``RunNotFound`` when there is none."""
        ...

    def list_runs(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        limit: int = 20,
    ) -> list[RunRecord]:
        """Return runs newest first."""
        ...

    def run_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Return up to ``limit`` run ids that start with ``prefix``, in id order.

        How the CLI accepts a unique prefix of an id (``show 4e69``).
        """
        ...

    def get_aggregates(self, run_id: str) -> list[ScoreAggregate]:
        """Return a run's stored aggregates, ordered by feature, scorer."""
        ...

    def worst_results(self, run_id: str, limit: int = 10) -> list[ResultRecord]:
        """Return errors first, then the lowest scores."""
        ...

    def get_decisions(self, run_id: str) -> list[Decision]:
        """Return a run's stored decisions, by feature and scorer (empty if none were stored)."""
        ...


class HistoryReader(RunLookup, RunHistory, Protocol):
    """What the detector, the backtest and the alert planner read: runs by id and their history."""


class RunStore(
    RunLifecycle, ResultSink, CaseStepStore, RunHistory, AlertOutbox, RunLookup, Protocol
):
    """Durable storage of runs, results, aggregates, decisions and the outbox: every seam.

    For the runner and the daemon, which use nearly all of it. Implementations
    are synchronous and thread-safe; the async runner calls them through a
    single writer thread so the event loop never blocks on I/O.
    """

    def close(self) -> None:
        """Dispose of connections."""
        ...

"""The Protocols the service layer needs; adapters implement them.

Keeping them in one place means the runner and the daemon can be tested with
the fakes in ``continuous_eval.testing`` and run for real with the adapters,
without either knowing which. The run store is split along its seams, so each
consumer asks for the narrowest one it uses; ``RunStore`` joins them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from continuous_eval.core.models import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    CaseResult,
    ControlAction,
    DeliveryResult,
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
    ScoreOutcome,
    TargetOutput,
)
from continuous_eval.core.reads import RunKey, RunPoll, RunSnapshot, TrendPoint
from continuous_eval.core.regression import Decision, KeyState, ScoreKey
from continuous_eval.core.suite import Case


class Clock(Protocol):
    """Where the service reads the time; tests inject a fake one."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class Target(Protocol):
    """The system under test for one feature."""

    async def answer(self, case: Case) -> TargetOutput:
        """Return the system's answer for one case; raise ``TargetError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the run ends."""
        ...


class CaseScorer(Protocol):
    """One configured scorer, ready to grade outputs."""

    name: str

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Grade one output; raise ``ScorerError`` (never return 0) when it cannot."""
        ...


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


class RunHistory(Protocol):
    """What the due check, the budget, the detector and the outage check read.

    ``latest_alert`` is here, not in ``AlertOutbox``: the planner reads the
    outbox's past to know whether an outage is open, and never delivers.
    """

    def db_now(self) -> datetime:
        """Return the database's clock (aware UTC): leases never trust a replica's clock."""
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


class RunStore(RunLifecycle, ResultSink, RunHistory, AlertOutbox, RunLookup, Protocol):
    """Durable storage of runs, results, aggregates, decisions and the outbox: every seam.

    For the runner and the daemon, which use nearly all of it. Implementations
    are synchronous and thread-safe; the async runner calls them through a
    single writer thread so the event loop never blocks on I/O.
    """

    def close(self) -> None:
        """Dispose of connections."""
        ...


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


# --- the read side --------------------------------------------------------------


class RunReader(Protocol):
    """What the admin API, the CLI and the dashboard read: pages, live polls, the trend.

    Read-only and separate from ``RunStore``: the service never needs these,
    and a reader can be served from a replica or from memory in tests.
    Pages are keyset-paged, never by offset (``adapters.db.queries``).
    """

    def list_runs_page(
        self,
        *,
        suite: str | None = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        before: RunKey | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Up to ``limit`` runs newest first (created_at, then id), strictly after ``before``."""
        ...

    def list_results_page(
        self,
        run_id: str,
        *,
        feature: str | None = None,
        scorer: str | None = None,
        status: ResultStatus | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[ResultRecord]:
        """Up to ``limit`` of a run's results in the order they were stored (id order).

        Raises:
            RunNotFound: No such run (an empty list means a run with no results yet).
        """
        ...

    def run_snapshot(self, run_id: str, after_id: int | None = None) -> RunSnapshot:
        """A run, a result id to stream from (its newest by default), and its counts up to it.

        Raises:
            RunNotFound: No such run.
        """
        ...

    def poll_run(self, run_id: str, *, after_id: int, limit: int) -> RunPoll:
        """The run's row, then up to ``limit`` of its results with id > ``after_id``.

        Raises:
            RunNotFound: The run is gone.
        """
        ...

    def eval_trend(
        self,
        *,
        suite: str | None = None,
        feature: str | None = None,
        scorer: str | None = None,
        limit: int = 100,
    ) -> list[TrendPoint]:
        """Scheduled runs' aggregates, newest slot first, one per run x feature x scorer."""
        ...


# --- the daemon, the runner and their observers -----------------------------


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


class PlanSource(Protocol):
    """Builds a runnable plan for a suite (reading its datasets anew each time)."""

    def plan(self, suite: str, features: Sequence[str]) -> RunPlan:
        """Validate and fingerprint the suite's datasets and return the plan."""
        ...


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


@dataclass(frozen=True)
class FeaturePlan:
    """One feature, ready to run: a re-openable case stream, its target and scorers."""

    name: str
    cases: Callable[[], Iterator[Case]]
    """Opens the dataset again from the start; called once per run."""
    case_count: int
    target: Target
    scorers: Sequence[CaseScorer]
    budgeted: frozenset[str] = frozenset()
    """Names of the scorers that spend the judge budget (the LLM judges)."""


@dataclass(frozen=True)
class RunPlan:
    """A suite, resolved: what to run and what the results will be compared as."""

    suite: str
    features: Sequence[FeaturePlan]
    concurrency: int
    """Cases of this suite in flight at once."""
    fingerprint: str
    fingerprint_parts: dict[str, str] = field(default_factory=dict)
    pair_fingerprints: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def cases_total(self) -> int:
        """Cases across the selected features."""
        return sum(f.case_count for f in self.features)

    @property
    def results_total(self) -> int:
        """Expected case x scorer results."""
        return sum(f.case_count * len(f.scorers) for f in self.features)


class RunObserver(Protocol):
    """Told about progress; the CLI draws a bar with it, the API streams it."""

    def case_finished(self, feature: str, case_id: str, errors: int) -> None:
        """One case is done (its results are queued for storage); ``errors`` of its
        case x scorer results errored."""
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

"""Small typed records that flow between the runner, the scorers and the store.

Frozen dataclasses with no behaviour beyond trivial derived values, so every
layer can build and compare them in tests without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from continuous_eval.core.trajectory import Step

RunType = Literal["scheduled", "manual"]
"""Scheduled runs are baselines for regression checks; manual runs never are."""


class RunStatus(StrEnum):
    """Lifecycle of a run. Terminal statuses never change again."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    INCONCLUSIVE = "inconclusive"
    """Ran to its end, but too few results scored (below the completeness floor) to
    say anything about quality: an outage of the target or judge, not a success."""

    @property
    def terminal(self) -> bool:
        """Whether the run is over and its status final."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.SKIPPED,
        RunStatus.INCONCLUSIVE,
    }
)


class ResultStatus(StrEnum):
    """Outcome of one case x scorer. Errors are never counted as a score of zero."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and money one model call spent."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
        )


NO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class TargetOutput:
    """What the system under test answered for one case."""

    text: str
    """The answer as text; non-string answers are serialised as JSON."""
    usage: Usage = NO_USAGE
    """Model usage when the target is a model call."""
    steps: tuple[Step, ...] = ()
    """An agent's steps (tool calls, results, messages) on the way to the answer."""


@dataclass(frozen=True, slots=True)
class ScoreOutcome:
    """What one scorer decided about one output."""

    score: float
    """1/0 for deterministic scorers (so a mean is a pass rate), 1-5 for the judge."""
    passed: bool | None = None
    rationale: str | None = None
    usage: Usage = NO_USAGE


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One stored row: a case x scorer of one run."""

    feature: str
    case_id: str
    scorer: str
    status: ResultStatus
    score: float | None = None
    passed: bool | None = None
    output_excerpt: str | None = None
    error: str | None = None
    rationale: str | None = None
    latency_ms: float | None = None
    """Latency of the target call for this case."""
    usage: Usage = NO_USAGE
    """Usage of the scorer's own call (the judge)."""
    attempt: int = 1
    input_excerpt: str | None = None
    """The case's input as given to the target (JSON text unless a string), capped
    like the output: a comparison of two runs must still show what was asked
    after the dataset file changed."""
    expected_excerpt: str | None = None
    """The case's expected answer, if any, capped the same way."""
    trace_id: str | None = None
    """The recorded interaction an online case scored, so a result links back to it."""


@dataclass(frozen=True, slots=True)
class ScoreAggregate:
    """Per run x feature x scorer summary; the trend and the detector read these."""

    feature: str
    scorer: str
    mean: float | None
    """None when no case was scored (every case errored)."""
    stderr: float | None
    """Standard error of the mean; None below two scored cases."""
    n: int
    """Cases scored (errors excluded)."""
    errors: int
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class ProgressDelta:
    """Counts to add to a run after a batch of results is stored."""

    cases_done: int = 0
    scored: int = 0
    errored: int = 0
    judge_usage: Usage = NO_USAGE
    target_usage: Usage = NO_USAGE

    def __add__(self, other: ProgressDelta) -> ProgressDelta:
        return ProgressDelta(
            self.cases_done + other.cases_done,
            self.scored + other.scored,
            self.errored + other.errored,
            self.judge_usage + other.judge_usage,
            self.target_usage + other.target_usage,
        )


CallbackChannel = Literal["callback", "run_webhook"]
"""``callback``: the URL one request named; ``run_webhook``: the setting, for every run."""


@dataclass(frozen=True, slots=True)
class Callback:
    """Where a run's completion is posted (``core.run_notice``)."""

    channel: CallbackChannel
    url: str


@dataclass(frozen=True, slots=True)
class NewRun:
    """Everything needed to create a run row."""

    id: str
    suite: str
    run_type: RunType
    features: tuple[str, ...]
    cases_total: int
    total: int
    """Expected case x scorer results."""
    fingerprint: str
    fingerprint_parts: dict[str, str] = field(default_factory=dict)
    scheduled_for: datetime | None = None
    idempotency_key: str | None = None
    spec_hash: str | None = None
    reason: str | None = None
    """Status reason stored with the new run (why a slot was recorded as skipped)."""
    callbacks: tuple[Callback, ...] = ()
    """Where the run's completion is posted when it ends."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored."""

    id: str
    suite: str
    run_type: RunType
    status: RunStatus
    status_reason: str | None
    attempt: int
    features: tuple[str, ...]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scheduled_for: datetime | None
    cases_total: int
    cases_done: int
    total: int
    scored: int
    errored: int
    judge_usage: Usage
    target_usage: Usage
    fingerprint: str
    fingerprint_parts: dict[str, str]
    idempotency_key: str | None = None
    spec_hash: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    callbacks: tuple[Callback, ...] = ()
    """Where the run's completion is posted when it ends."""

    @property
    def completeness(self) -> float:
        """Scored results as a share of the expected ones (1.0 for an empty run)."""
        return self.scored / self.total if self.total else 1.0

    @property
    def as_of(self) -> datetime:
        """Where its online features' window of traffic ends: its slot, else its creation.

        A takeover plans the run again with this, so it samples the same
        interactions the first attempt did.
        """
        return self.scheduled_for or self.created_at


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A stored result row, as read back: by reports, result pages and live events.

    ``id`` increases in the order results were stored, and one writer stores a
    run's results (a case's scorers together, in one transaction), so "rows
    with id > N" is exactly what someone who has seen up to N has not seen yet:
    the key of result pages and of live events. Re-storing a result (a retried
    case) keeps its id.
    """

    id: int
    run_id: str
    feature: str
    case_id: str
    scorer: str
    status: ResultStatus
    score: float | None
    passed: bool | None
    output_excerpt: str | None
    error: str | None
    rationale: str | None
    latency_ms: float | None
    usage: Usage
    attempt: int
    created_at: datetime
    input_excerpt: str | None = None
    """What the case asked (see ``CaseResult.input_excerpt``); None for results
    stored before inputs were kept."""
    expected_excerpt: str | None = None
    trace_id: str | None = None
    """The recorded interaction an online case scored (see ``CaseResult.trace_id``)."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Who may write to a running run: the attempt and the lease owner that claimed it.

    Every write a worker makes is guarded on (status, attempt, owner), so a
    worker that lost its lease (it stalled, another replica took the run over)
    writes nothing.
    """

    attempt: int
    owner: str


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease to take with a new or adopted run; expiry is computed on the database's clock."""

    owner: str
    seconds: float


ControlAction = Literal["cancel", "pause", "resume"]
"""Operations an admin can apply to a run."""


@dataclass(frozen=True, slots=True)
class CaseDrop:
    """One case that fell: its known-good level (``before``) and its score now (``after``)."""

    case_id: str
    before: float
    after: float


AlertStatus = Literal["pending", "sent", "dead", "suppressed"]
"""Outbox states; ``suppressed`` (no channel configured) is not a failure."""


AlertKind = Literal[
    "regression",
    "recovery",
    "judge_drift",
    "run_finished",
    "outage",
    "outage_over",
    "judge_agreement",
    "agreement_ok",
]
"""``regression`` / ``judge_drift`` / ``recovery``: a run's incident report
(``core.alerting``); ``run_finished``: a run-completion notice to a callback (``core.run_notice``);
``outage`` / ``outage_over``: a suite could not be evaluated, and evaluates again
(``core.outage``); ``judge_agreement`` / ``agreement_ok``: a judge fell under its
agreement floor with people's labels, and came back above it (``core.calibration``)."""


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An outbox row to write in the same transaction that finishes a run."""

    key: str
    """Idempotency key (suite:feature:scorer:run); unique with ``channel``."""
    channel: str
    """``email``, ``webhook``, or ``none`` when no channel is configured."""
    kind: AlertKind
    run_id: str
    suite: str
    feature: str
    scorer: str
    rule: str | None
    status: AlertStatus
    payload: str
    """The exact JSON text sent on every attempt ("" when nothing is to be sent)."""
    summary: dict[str, object]
    """The regression (or recovery) as JSON-able data, for the API and reports."""
    reason: str | None = None
    """Why the alert is suppressed, when it is."""
    destination: str | None = None
    """Where a notice goes, for channels without a fixed address (a run's callback URL)."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An outbox row as stored."""

    id: int
    key: str
    channel: str
    kind: AlertKind
    run_id: str
    suite: str
    feature: str
    scorer: str
    rule: str | None
    status: AlertStatus
    payload: str
    summary: dict[str, object]
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    sent_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    destination: str | None = None
    """Where a notice goes, for channels without a fixed address (a run's callback URL)."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one delivery attempt through a channel came to."""

    outcome: Literal["sent", "retry", "dead"]
    provider_id: str | None = None
    """The provider's id for a sent message (Resend's email id)."""
    reason: str | None = None
    """Why it must be retried or is dead; never contains a secret."""
    retry_after_s: float | None = None
    """The provider's own hint (``retry-after``), when it gave one."""

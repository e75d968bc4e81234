"""The admin API's request and response bodies, and their conversion from the core's records.

Only wire shapes belong here: pydantic models that FastAPI validates and
turns into the OpenAPI document, plus ``*_out`` functions mapping the core's
frozen records onto them. Keeping the wire shape separate from ``core``
means a column can be added to a record without changing the API by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from continuous_eval.core.models import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
    Usage,
)
from continuous_eval.core.reads import TrendPoint
from continuous_eval.core.trajectory import Step

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""Client-chosen run ids: up to 64 characters (the column's width), URL-safe, no leading dot."""

NAME_MAX = 200
"""Longest suite, feature or scorer name the tables hold."""

NO_NUL = r"^[^\x00]*$"
"""Strings the database is asked about: Postgres refuses NUL in text, so it is a 422 here."""

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NO_NUL)]
"""A suite, feature or scorer name."""


# ----------------------------------------------------------------------- errors


class ErrorBody(BaseModel):
    """What went wrong, in a form a client can branch on."""

    code: str
    """Stable machine-readable code, e.g. ``not_found``, ``gate_busy``; never reworded."""
    message: str
    """Human-readable explanation; may change between versions."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Structured context: the validation errors, the conflicting run, the busy suite."""
    request_id: str
    """Also in the ``X-Request-ID`` header; quote it when reporting a problem."""


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


# ----------------------------------------------------------------------- health


class HealthOut(BaseModel):
    """Liveness, with this replica's status fields (owner, runs in flight)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok"]


class ReadyOut(BaseModel):
    """Readiness: whether the database answers at the current schema."""

    status: Literal["ready", "not_ready"]
    reason: str | None = None
    """Why the replica is not ready."""


# ------------------------------------------------------------------------- runs


class RunRequest(BaseModel):
    """Start a manual run of a suite.

    With ``run_id`` the request is idempotent: sending it again with the same
    suite and features answers the run already started (202); the same id
    with another spec is a conflict (409).
    """

    model_config = ConfigDict(extra="forbid")

    suite: Name
    features: list[Name] = Field(default_factory=list, max_length=500)
    """Features to run; empty for every feature of the suite."""
    run_id: str | None = Field(default=None, pattern=RUN_ID_PATTERN)
    """A client-chosen id, which makes retries safe; generated when absent."""
    callback_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://[^\s/?#]+[^\s]*$"
    )
    """POSTed a signed JSON notice (Standard Webhooks) when the run ends, whatever its
    outcome; needs ``CONTINUOUS_EVAL_RUN_WEBHOOK_SECRET``."""


class RunAccepted(BaseModel):
    """A run that was started, or the one an idempotent retry refers to."""

    run_id: str
    status: RunStatus


class UsageOut(BaseModel):
    """Tokens and money spent by model calls."""

    model_config = ConfigDict(from_attributes=True)

    input_tokens: int
    output_tokens: int
    cost_usd: float


class ProgressOut(BaseModel):
    """How far a run has come."""

    cases_total: int
    cases_done: int
    results_total: int
    """Expected case x scorer results."""
    scored: int
    errored: int
    fraction: float
    """cases_done / cases_total (1.0 for an empty run)."""


class RunOut(BaseModel):
    """A run as the API shows it."""

    id: str
    suite: str
    run_type: RunType
    status: RunStatus
    status_reason: str | None
    attempt: int
    """Workers that took the run; above 1 after a takeover or a resume."""
    features: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scheduled_for: datetime | None
    duration_s: float | None
    """finished_at - started_at, once finished."""
    progress: ProgressOut
    judge_usage: UsageOut
    target_usage: UsageOut
    cost_usd: float
    fingerprint: str
    spec_hash: str | None
    lease_owner: str | None
    """The replica executing the run, while one does."""
    heartbeat_at: datetime | None


class ScoreOut(BaseModel):
    """A run's aggregate for one feature x scorer."""

    feature: str
    scorer: str
    mean: float | None
    stderr: float | None
    n: int
    errors: int
    fingerprint: str


class RunDetail(RunOut):
    """A run with its stored aggregates (empty until it finished)."""

    scores: list[ScoreOut]


class RunPage(BaseModel):
    """A page of runs, newest first."""

    items: list[RunOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last page."""


class ResultOut(BaseModel):
    """One case x scorer result."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    """Increases in the order results were stored; the key of pages and live events."""
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
    usage: UsageOut
    attempt: int
    created_at: datetime
    input_excerpt: str | None = None
    """What the case asked (JSON text unless a string), capped like the output; null
    for results stored before inputs were kept."""
    expected_excerpt: str | None = None
    """The case's expected answer, capped the same way; null when it has none."""
    trace_id: str | None = None
    """The recorded interaction an online case scored (``GET /api/traces/{trace_id}``);
    null for cases from a dataset file."""


class ResultPage(BaseModel):
    """A page of a run's results, in the order they were stored."""

    items: list[ResultOut]
    next_cursor: str | None


class SuiteOut(BaseModel):
    """A suite of the loaded config and its features."""

    name: str
    features: list[str]


class SuiteList(BaseModel):
    """The suites this replica can run."""

    items: list[SuiteOut]


# ------------------------------------------------------------------ trend, alerts


class TrendPointOut(BaseModel):
    """One scheduled run's score for one feature x scorer."""

    model_config = ConfigDict(from_attributes=True)

    run_id: str
    suite: str
    feature: str
    scorer: str
    score: float | None
    """The mean over scored cases; null when every case errored."""
    stderr: float | None
    n: int
    """Cases scored."""
    errors: int
    status: RunStatus
    """The run's status: a cancelled or failed run's point covers part of the cases."""
    scheduled_for: datetime | None
    finished_at: datetime | None
    fingerprint: str | None
    """Changes when the dataset, rubric, judge model or target changed: not comparable across."""


class TrendOut(BaseModel):
    """The score trend of scheduled runs, newest first."""

    items: list[TrendPointOut]


class AlertOut(BaseModel):
    """An alert of the outbox (the exact payload sent is kept in the database, not shown)."""

    model_config = ConfigDict(from_attributes=True)

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
    summary: dict[str, Any]
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    sent_at: datetime | None


class AlertList(BaseModel):
    """Alerts, newest first."""

    items: list[AlertOut]


# ------------------------------------------------------------------ live events


class ProgressEvent(BaseModel):
    """``progress``: the counts after the ``case`` event it follows.

    Counted from the results the stream has sent, so every subscriber at the
    same event id reports the same numbers, and a resumed stream carries on
    exactly where the interrupted one stopped.
    """

    done: int
    """Cases finished."""
    total: int
    """Cases in the run."""
    errors: int
    """Results that errored."""
    scored: int
    """Results that scored."""
    results_total: int
    """Results expected (cases x scorers)."""


class SnapshotEvent(RunOut):
    """``snapshot``: the run as it is when the stream (re)starts."""

    last_event_id: int
    """Results up to this id are accounted for; ``case`` events follow from here."""
    position: ProgressEvent
    """The counts up to ``last_event_id``; ``progress`` events continue from these."""


class StatusEvent(BaseModel):
    """``status``: the run's status changed (or a worker took it over)."""

    status: RunStatus
    reason: str | None
    attempt: int


class CaseScoreOut(BaseModel):
    """One scorer's verdict in a ``case`` event."""

    result_id: int
    scorer: str
    status: ResultStatus
    score: float | None
    passed: bool | None
    error: str | None


class CaseEvent(BaseModel):
    """``case``: one finished case with its scorers' results."""

    feature: str
    case_id: str
    latency_ms: float | None
    results: list[CaseScoreOut]


class StepEvent(BaseModel):
    """``step``: one step an agent target took on a case, as it arrived (before the case's
    ``case`` event)."""

    feature: str
    case_id: str
    index: int
    """The step's position in its case, from 0."""
    step: Step


class EndEvent(BaseModel):
    """``end``: the run reached a final status; the stream closes after this."""

    status: RunStatus
    reason: str | None
    run: RunOut


# ------------------------------------------------------------------ conversions


def usage_out(usage: Usage) -> UsageOut:
    """Convert the core's usage record."""
    return UsageOut.model_validate(usage)


def progress_out(run: RunRecord) -> ProgressOut:
    """Summarise a run's counters."""
    fraction = run.cases_done / run.cases_total if run.cases_total else 1.0
    return ProgressOut(
        cases_total=run.cases_total,
        cases_done=run.cases_done,
        results_total=run.total,
        scored=run.scored,
        errored=run.errored,
        fraction=min(1.0, fraction),
    )


def _run_fields(run: RunRecord) -> dict[str, Any]:
    duration = (
        (run.finished_at - run.started_at).total_seconds()
        if run.finished_at is not None and run.started_at is not None
        else None
    )
    return {
        "id": run.id,
        "suite": run.suite,
        "run_type": run.run_type,
        "status": run.status,
        "status_reason": run.status_reason,
        "attempt": run.attempt,
        "features": list(run.features),
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "scheduled_for": run.scheduled_for,
        "duration_s": duration,
        "progress": progress_out(run),
        "judge_usage": usage_out(run.judge_usage),
        "target_usage": usage_out(run.target_usage),
        "cost_usd": run.judge_usage.cost_usd + run.target_usage.cost_usd,
        "fingerprint": run.fingerprint,
        "spec_hash": run.spec_hash,
        "lease_owner": run.lease_owner,
        "heartbeat_at": run.heartbeat_at,
    }


def run_out(run: RunRecord) -> RunOut:
    """Convert a stored run."""
    return RunOut(**_run_fields(run))


def run_detail(run: RunRecord, aggregates: list[ScoreAggregate]) -> RunDetail:
    """Convert a stored run with its aggregates."""
    scores = [
        ScoreOut(
            feature=a.feature,
            scorer=a.scorer,
            mean=a.mean,
            stderr=a.stderr,
            n=a.n,
            errors=a.errors,
            fingerprint=a.fingerprint,
        )
        for a in aggregates
    ]
    return RunDetail(**_run_fields(run), scores=scores)


def snapshot_event(run: RunRecord, last_event_id: int, position: ProgressEvent) -> SnapshotEvent:
    """Build the first event of a live stream."""
    return SnapshotEvent(**_run_fields(run), last_event_id=last_event_id, position=position)


def result_out(result: ResultRecord) -> ResultOut:
    """Convert a stored result (by attribute: the schema names the record's fields)."""
    return ResultOut.model_validate(result)


def trend_point_out(point: TrendPoint) -> TrendPointOut:
    """Convert a trend row."""
    return TrendPointOut.model_validate(point)


def alert_out(alert: AlertRecord) -> AlertOut:
    """Convert an outbox row; the schema leaves out the payload (it may carry addresses)."""
    return AlertOut.model_validate(alert)

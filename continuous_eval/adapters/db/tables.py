"""The database schema, as SQLAlchemy Core tables: the one source migrations are checked against.

Only table definitions belong here. ``migrations/versions`` recreates the same
schema by hand and ``alembic check`` (see ``migrate.check``) fails when the two
drift apart, so a change here always comes with a new migration.

Every constraint and index has a deterministic name (the naming convention
below). Alembic's batch mode on SQLite rebuilds a table to alter it and can only
drop or recreate constraints it can name.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from continuous_eval.adapters.db.types import UTCDateTime
from continuous_eval.core.jobs import JOB_STATUSES
from continuous_eval.core.lifecycle import RUN_TYPES
from continuous_eval.core.models import ResultStatus, RunStatus
from continuous_eval.core.outbox import ALERT_KINDS, ALERT_STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Names for constraints and indexes, so migrations can refer to them on every backend."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""Everything continuous-eval stores; ``target_metadata`` of the Alembic environment."""


def _one_of(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


# A server default on every counter, so rows written by plain SQL (an operator,
# a later migration backfilling) get the same values the store writes.
_ZERO = text("0")

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("suite", String(200), nullable=False),
    Column("run_type", String(16), nullable=False, server_default=text("'manual'")),
    Column("scheduled_for", UTCDateTime(), doc="The schedule slot a scheduled run claims."),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime()),
    Column("heartbeat_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("features", JSON, nullable=False),
    Column("cases_total", Integer, nullable=False, server_default=_ZERO),
    Column("cases_done", Integer, nullable=False, server_default=_ZERO),
    Column("total", Integer, nullable=False, server_default=_ZERO),
    Column("scored", Integer, nullable=False, server_default=_ZERO),
    Column("errored", Integer, nullable=False, server_default=_ZERO),
    Column("judge_input_tokens", BigInteger, nullable=False, server_default=_ZERO),
    Column("judge_output_tokens", BigInteger, nullable=False, server_default=_ZERO),
    Column("judge_cost_usd", Float, nullable=False, server_default=_ZERO),
    Column("target_input_tokens", BigInteger, nullable=False, server_default=_ZERO),
    Column("target_output_tokens", BigInteger, nullable=False, server_default=_ZERO),
    Column("target_cost_usd", Float, nullable=False, server_default=_ZERO),
    Column("fingerprint", String(64), nullable=False),
    Column("fingerprint_parts", JSON),
    Column("idempotency_key", String(200)),
    Column("spec_hash", String(64)),
    Column("callbacks", JSON, doc="Where the run's completion is posted: [{channel, url}]."),
    CheckConstraint(_one_of("run_type", RUN_TYPES), name="run_type"),
    CheckConstraint(_one_of("status", [s.value for s in RunStatus]), name="status"),
    # One scheduled run per suite and slot: a second replica's claim of the
    # same slot fails here. NULLs are distinct in a unique constraint on both
    # backends, so manual runs (no slot) never collide.
    UniqueConstraint("suite", "scheduled_for"),
    UniqueConstraint("idempotency_key"),
    # The scheduler's due check: the newest scheduled run of a suite.
    Index("ix_eval_runs_suite_run_type_started_at", "suite", "run_type", "started_at"),
    # Listing, newest first, with a unique tie-breaker.
    Index("ix_eval_runs_created_at_id", "created_at", "id"),
    # Recovery: the runs of a suite a worker may adopt (queued, interrupted,
    # running with an expired lease) and the stale-lock check read these.
    Index("ix_eval_runs_suite_status", "suite", "status"),
    # No index on started_at alone for the judge budget's sum: Postgres would
    # then scan it backwards for the due check instead of the index above.
)
"""One row per run, scheduled or manual."""

eval_results = Table(
    "eval_results",
    metadata,
    # SQLite only autoincrements an INTEGER PRIMARY KEY; BIGINT would not.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("feature", String(200), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("scorer", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("score", Float),
    Column("passed", Boolean),
    Column("output_excerpt", Text),
    Column("error", Text),
    Column("rationale", Text),
    Column("latency_ms", Float),
    Column("input_tokens", Integer, nullable=False, server_default=_ZERO),
    Column("output_tokens", Integer, nullable=False, server_default=_ZERO),
    Column("cost_usd", Float, nullable=False, server_default=_ZERO),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("input_excerpt", Text),
    Column("expected_excerpt", Text),
    Column("trace_id", String(32), doc="The recorded interaction an online case scored."),
    CheckConstraint(_one_of("status", [s.value for s in ResultStatus]), name="status"),
    # The idempotency key of a result: a retried or re-run case replaces its
    # row. Scorer before case_id so the index also serves ``iter_scores``
    # (run_id = ? ORDER BY feature, scorer, case_id) without a sort.
    UniqueConstraint("run_id", "feature", "scorer", "case_id"),
    # A run's results in insertion order: the results pages and the live
    # progress stream ("results of run X after id N") without walking the
    # whole primary key as history grows.
    Index("ix_eval_results_run_id_id", "run_id", "id"),
)
"""One row per run x feature x case x scorer."""

eval_run_scores = Table(
    "eval_run_scores",
    metadata,
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("feature", String(200), nullable=False),
    Column("scorer", String(200), nullable=False),
    Column("mean", Float),
    Column("stderr", Float),
    Column("n", Integer, nullable=False, server_default=_ZERO),
    Column("errors", Integer, nullable=False, server_default=_ZERO),
    Column("fingerprint", String(64)),
    PrimaryKeyConstraint("run_id", "feature", "scorer"),
    # The trend reads one feature x scorer across runs.
    Index("ix_eval_run_scores_feature_scorer", "feature", "scorer"),
)
"""Per run x feature x scorer aggregates; the trend and the detector read these."""

suite_locks = Table(
    "suite_locks",
    metadata,
    Column("suite", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)
"""One row per suite a process holds, on SQLite, which has no advisory locks.

A lease rather than a plain row: the holder renews ``expires_at`` (database
clock) while it runs the suite, so a crashed or stalled process cannot keep a
suite locked forever. Postgres uses ``pg_try_advisory_lock`` instead and
leaves this table empty (see ``adapters/db/locks.py``).
"""

alerts = Table(
    "alerts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    # 700: three names of up to 200 characters, a run id of up to 64, and colons.
    Column("key", String(700), nullable=False, doc="Idempotency key: suite:feature:scorer:run."),
    Column("channel", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("feature", String(200), nullable=False),
    Column("scorer", String(200), nullable=False),
    Column("rule", String(16)),
    Column("status", String(16), nullable=False),
    # Text, not JSON: the exact bytes sent on every attempt, so a retry after
    # a crash carries the same body (and the provider's idempotency check
    # sees the same request).
    Column("payload", Text, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, server_default=_ZERO),
    Column("next_attempt_at", UTCDateTime()),
    Column("last_error", Text),
    Column("provider_id", String(200)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Column("claimed_by", String(200)),
    Column("claimed_until", UTCDateTime()),
    Column("destination", Text, doc="A notice's URL, for channels without a fixed address."),
    CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind"),
    CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
    # The outbox's idempotency: writing a run's alerts twice (a retried
    # finish, a second replica) inserts nothing the second time.
    UniqueConstraint("key", "channel"),
    # Delivery: the pending alerts that are due.
    Index("ix_alerts_status_next_attempt_at", "status", "next_attempt_at"),
    # A run's alerts (the API), and the cascade when a run is deleted.
    Index("ix_alerts_run_id", "run_id"),
    # The cooldown check: the newest alert of a kind for a feature x scorer.
    Index(
        "ix_alerts_suite_feature_scorer_kind_created_at",
        "suite",
        "feature",
        "scorer",
        "kind",
        "created_at",
    ),
)
"""The outbox: one row per alert x channel, written with the run's final status, then delivered.

``claimed_by`` and ``claimed_until`` are a short lease on the database's
clock, taken by the replica sending the alert; one that dies mid-send leaves
a claim that expires, and the alert is sent again with the same key.
"""


eval_decisions = Table(
    "eval_decisions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("feature", String(200), nullable=False),
    Column("scorer", String(200), nullable=False),
    Column("kind", String(32), nullable=False, doc="core.regression.DecisionKind"),
    Column("rule", String(16)),
    Column("message", Text, nullable=False),
    Column("transition", String(16), doc="opened, worsened, recovered or reset; else null."),
    Column("known_good", Boolean, nullable=False),
    Column("cusum", Float, nullable=False, server_default=_ZERO),
    Column("incident_run_id", String(64), doc="The run that opened the key's open incident."),
    Column("incident_kind", String(16)),
    Column("incident_worst", Float),
    Column("current", Float),
    Column("baseline", Float),
    Column("mean_difference", Float),
    Column("ci_low", Float),
    Column("ci_high", Float),
    Column("p_value", Float),
    Column("p_adjusted", Float),
    Column("n_paired", Integer, nullable=False, server_default=_ZERO),
    Column("corrected_difference", Float),
    Column(
        "details",
        JSON,
        nullable=False,
        doc="baseline_run_ids, fallen cases [[case, before, after], ...], anchor check.",
    ),
    Column("created_at", UTCDateTime(), nullable=False),
    # One decision per key of a run; a second finish writes nothing.
    UniqueConstraint("run_id", "feature", "scorer"),
    # Incidents and a key's decisions over time (backtest, the dashboard).
    Index(
        "ix_eval_decisions_suite_feature_scorer_created_at",
        "suite",
        "feature",
        "scorer",
        "created_at",
    ),
    # The dashboard's verdicts: each suite's newest decisions (latest_verdicts).
    Index("ix_eval_decisions_suite_created_at", "suite", "created_at"),
)
"""What the detector concluded for each key of a run, written with the run's final status.

The next run reads back ``known_good``, ``cusum`` and the incident columns:
they are the detector's whole memory, so a restart or another replica decides
the same way.
"""


interactions = Table(
    "interactions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("feature", String(200), nullable=False),
    Column("name", String(500)),
    Column("operation", String(64)),
    Column("model", String(200)),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=False),
    Column("steps", JSON, doc="The trajectory: [core.trajectory.Step, ...]."),
    Column("attributes", JSON, doc="User-supplied metadata: the span's non-gen_ai attributes."),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("error", Text),
    Column("sample_key", BigInteger, nullable=False, doc="core.interactions.sample_key"),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("ingested_at", UTCDateTime(), nullable=False),
    # Idempotent ingestion: a re-sent span is stored once. Also finds a trace.
    UniqueConstraint("trace_id", "span_id"),
    # Retention by age and listing by time within a feature.
    Index("ix_interactions_feature_started_at", "feature", "started_at"),
    # An online run's sample: the lowest keys of a window, read in key order
    # from the index and stopping at the limit (started_at filtered in the index).
    Index("ix_interactions_feature_sample_key_started_at", "feature", "sample_key", "started_at"),
    # Listing a feature in id order, and the row cap's oldest-first deletes.
    Index("ix_interactions_feature_id", "feature", "id"),
)
"""One row per ingested GenAI span (core.interactions.Interaction)."""

interaction_feedback = Table(
    "interaction_feedback",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16)),
    Column("author", String(200), nullable=False),
    Column("score", Float),
    Column("label", String(200)),
    Column("comment", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_interaction_feedback_trace_id_id", "trace_id", "id"),
)
"""People's scores and labels of recorded traces (core.interactions.Feedback)."""

case_steps = Table(
    "case_steps",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("feature", String(200), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("step", JSON, nullable=False, doc="core.trajectory.Step"),
    Column("created_at", UTCDateTime(), nullable=False),
    # A case's steps in order; a retried case replaces its steps.
    UniqueConstraint("run_id", "feature", "case_id", "seq"),
)
"""The steps an agent target streamed for each case of a run."""


# --- jobs (issue 14: long jobs stored in the database) ----------------------

jobs = Table(
    "jobs",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("kind", String(100), nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", String(200)),
    Column("progress", Float, nullable=False, server_default=_ZERO),
    Column("message", Text),
    Column("result", JSON),
    Column("error", Text),
    Column("attempt", Integer, nullable=False, server_default=_ZERO),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime()),
    Column("heartbeat_at", UTCDateTime()),
    Column("cancel_requested_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("idempotency_key", String(200)),
    CheckConstraint(_one_of("status", JOB_STATUSES), name="status"),
    UniqueConstraint("idempotency_key"),
    # The claim (oldest queued first) and the takeover (running, by expiry).
    Index("ix_jobs_status_id", "status", "id"),
    # GET /api/jobs?kind=...: newest of a kind first.
    Index("ix_jobs_kind_id", "kind", "id"),
)
"""One row per job (core.jobs.JobRecord); its lease fences the runner that owns it."""

job_events = Table(
    "job_events",
    metadata,
    Column(
        "job_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("jobs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("step", String(200), nullable=False),
    Column("progress", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("job_id", "seq"),
)
"""The steps each job's handler reported, numbered from 1 (the SSE event ids)."""

# --- learned evaluators (issue 14, part "learned") ----------------------------

learned_evaluators = Table(
    "learned_evaluators",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("eval_set", String(200), nullable=False),
    Column("code", Text, nullable=False),
    Column("model", String(200), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("metrics", JSON, nullable=False, doc="core.evaluators.EvaluatorMetrics"),
    Column("details", JSON, nullable=False),
    Column("job_id", BigInteger),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("promoted_at", UTCDateTime()),
    # Versions count up per name; two generations racing for the same next
    # version meet here, and the loser retries with the one after.
    UniqueConstraint("name", "version"),
)
"""One row per generated version of a learned evaluator (core.evaluators.LearnedEvaluator)."""


# ------------------------------------------------ labels: eval sets and labels (issue 14)

eval_sets = Table(
    "eval_sets",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("name", String(200), nullable=False),
    Column("scale", String(16), nullable=False, doc="core.labels.LabelScale"),
    Column("description", Text),
    Column("feature", String(200), doc="Filled from feedback on this feature's traces."),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("feedback_cursor", BigInteger, doc="The last interaction_feedback.id filled from."),
    UniqueConstraint("name"),
    CheckConstraint("scale IN ('pass_fail', '1-5')", name="scale"),
)
"""Named sets of cases people label (core.labels.EvalSet)."""

eval_cases = Table(
    "eval_cases",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "eval_set_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("eval_sets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("case_id", String(200), nullable=False),
    Column("input", JSON, nullable=False),
    Column("output", Text, nullable=False),
    Column("expected", JSON),
    Column("metadata", JSON),
    Column("trace_id", String(32)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # put_cases upserts by it; a set's cases are read in case id order from it.
    UniqueConstraint("eval_set_id", "case_id"),
)
"""The cases of an eval set (core.labels.EvalCase)."""

eval_labels = Table(
    "eval_labels",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "eval_set_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("eval_sets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("case_id", String(200), nullable=False),
    Column("author", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("comment", Text),
    Column("source", String(16), nullable=False, doc="core.labels.LabelSource"),
    Column("created_at", UTCDateTime(), nullable=False),
    # A set's labels as of a time, and one case's history, oldest first.
    Index("ix_eval_labels_eval_set_id_case_id_created_at", "eval_set_id", "case_id", "created_at"),
)
"""People's labels of cases: append-only, superseded by a later label of the same author."""


# ------------------------------------------------ judge calibration (issue 14)

judge_agreement = Table(
    "judge_agreement",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("feature", String(200), nullable=False, doc="The calibrated feature, without @labels."),
    Column("scorer", String(200), nullable=False),
    Column("eval_set", String(200), nullable=False),
    Column("scale", String(16), nullable=False, doc="core.labels.LabelScale"),
    Column("n", Integer, nullable=False),
    Column("split", Integer, nullable=False),
    Column("exact", Float),
    Column("kappa", Float),
    Column("spearman", Float),
    Column("confusion", JSON, nullable=False, doc="core.agreement.Confusion.as_json"),
    Column("contradictions", JSON, nullable=False, doc="[core.agreement.Contradiction]"),
    Column("reasons", JSON, nullable=False, doc="Why a figure is null, by figure."),
    Column("created_at", UTCDateTime(), nullable=False),
    # A retried finish rewrites the run's rows instead of adding some.
    UniqueConstraint("run_id", "feature", "scorer"),
    # The trend of one judge: newest first.
    Index(
        "ix_judge_agreement_suite_feature_scorer_created_at",
        "suite",
        "feature",
        "scorer",
        "created_at",
    ),
)
"""A judge's agreement with an eval set's labels, per run (core.agreement.RunAgreement)."""

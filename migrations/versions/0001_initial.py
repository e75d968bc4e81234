"""Create eval_runs, eval_results and eval_run_scores.

Written by hand to match ``continuous_eval/adapters/db/tables.py``;
``alembic check`` (tests/integration/test_migrations.py) proves they agree.
Types are spelled out here instead of imported from the package, so this
revision keeps creating the same schema whatever the package later becomes.
Names are wrapped in ``op.f()``: they are final, and must not go through the
metadata's naming convention again (``ck_%(table_name)s_%(constraint_name)s``
would turn ``ck_eval_runs_status`` into ``ck_eval_runs_ck_eval_runs_status``).

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_STATUSES = (
    "'queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled', 'skipped', 'interrupted'"
)


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    # The store's UTCDateTime is a Python-side wrapper over this column type.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _counter(name: str, type_: type[sa.types.TypeEngine[Any]] = sa.Integer) -> sa.Column[Any]:
    return sa.Column(name, type_(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    """Create the three tables, their constraints and indexes."""
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("run_type", sa.String(16), nullable=False, server_default=sa.text("'manual'")),
        _timestamp("scheduled_for"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _timestamp("lease_expires_at"),
        _timestamp("heartbeat_at"),
        _timestamp("created_at", nullable=False),
        _timestamp("started_at"),
        _timestamp("finished_at"),
        sa.Column("features", sa.JSON(), nullable=False),
        _counter("cases_total"),
        _counter("cases_done"),
        _counter("total"),
        _counter("scored"),
        _counter("errored"),
        _counter("judge_input_tokens", sa.BigInteger),
        _counter("judge_output_tokens", sa.BigInteger),
        _counter("judge_cost_usd", sa.Float),
        _counter("target_input_tokens", sa.BigInteger),
        _counter("target_output_tokens", sa.BigInteger),
        _counter("target_cost_usd", sa.Float),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("fingerprint_parts", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("spec_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
        sa.CheckConstraint(
            "run_type IN ('scheduled', 'manual')", name=op.f("ck_eval_runs_run_type")
        ),
        sa.CheckConstraint(f"status IN ({_RUN_STATUSES})", name=op.f("ck_eval_runs_status")),
        sa.UniqueConstraint(
            "suite", "scheduled_for", name=op.f("uq_eval_runs_suite_scheduled_for")
        ),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_eval_runs_idempotency_key")),
    )
    op.create_index(
        op.f("ix_eval_runs_suite_run_type_started_at"),
        "eval_runs",
        ["suite", "run_type", "started_at"],
    )
    op.create_index(op.f("ix_eval_runs_created_at_id"), "eval_runs", ["created_at", "id"])

    op.create_table(
        "eval_results",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("output_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        _counter("input_tokens"),
        _counter("output_tokens"),
        _counter("cost_usd", sa.Float),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1")),
        _timestamp("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_results")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_eval_results_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('ok', 'error', 'skipped')", name=op.f("ck_eval_results_status")
        ),
        sa.UniqueConstraint(
            "run_id",
            "feature",
            "scorer",
            "case_id",
            name=op.f("uq_eval_results_run_id_feature_scorer_case_id"),
        ),
    )

    op.create_table(
        "eval_run_scores",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("stderr", sa.Float(), nullable=True),
        _counter("n"),
        _counter("errors"),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "feature", "scorer", name=op.f("pk_eval_run_scores")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_eval_run_scores_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_eval_run_scores_feature_scorer"), "eval_run_scores", ["feature", "scorer"]
    )


def downgrade() -> None:
    """Drop everything this revision created, children first."""
    op.drop_index(op.f("ix_eval_run_scores_feature_scorer"), table_name="eval_run_scores")
    op.drop_table("eval_run_scores")
    op.drop_table("eval_results")
    op.drop_index(op.f("ix_eval_runs_created_at_id"), table_name="eval_runs")
    op.drop_index(op.f("ix_eval_runs_suite_run_type_started_at"), table_name="eval_runs")
    op.drop_table("eval_runs")

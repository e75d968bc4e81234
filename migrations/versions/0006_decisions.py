"""Stored decisions: what the detector concluded for every key of every run.

- ``eval_decisions``: one row per run x feature x scorer, written with the
  run's final status;
- ``ck_alerts_kind``: admits ``judge_drift`` (a run's report when only the
  judge moved).

The previous version keeps working against this schema during a rolling
upgrade: it writes no decisions (runs without decisions count as known-good
when complete) and no ``judge_drift`` rows. As in 0005, SQLite rebuilds
``alerts`` from the full definition given here (``copy_from``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('regression', 'recovery', 'run_finished', 'outage', 'outage_over')"
_NEW_KINDS = (
    "kind IN ('regression', 'recovery', 'judge_drift', 'run_finished', 'outage', 'outage_over')"
)


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _alerts(kinds: str, *, destination: bool) -> sa.Table:
    """``alerts`` as 0005 left it (a copy: migrations never import each other)."""
    columns: list[Any] = [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("key", sa.String(700), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _timestamp("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("sent_at"),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        _timestamp("claimed_until"),
    ]
    if destination:
        columns.append(sa.Column("destination", sa.Text(), nullable=True))
    table = sa.Table(
        "alerts",
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["eval_runs.id"], name="fk_alerts_run_id_eval_runs", ondelete="CASCADE"
        ),
        sa.CheckConstraint(kinds, name="ck_alerts_kind"),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'dead', 'suppressed')", name="ck_alerts_status"
        ),
        sa.UniqueConstraint("key", "channel", name="uq_alerts_key_channel"),
    )
    sa.Index("ix_alerts_status_next_attempt_at", table.c.status, table.c.next_attempt_at)
    sa.Index(
        "ix_alerts_suite_feature_scorer_kind_created_at",
        table.c.suite,
        table.c.feature,
        table.c.scorer,
        table.c.kind,
        table.c.created_at,
    )
    sa.Index("ix_alerts_run_id", table.c.run_id)
    # eval_runs only needs to exist for the foreign key to compile.
    sa.Table("eval_runs", table.metadata, sa.Column("id", sa.String(64), primary_key=True))
    return table


def upgrade() -> None:
    """Create ``eval_decisions``; widen the alert kinds."""
    with op.batch_alter_table("alerts", copy_from=_alerts(_OLD_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _NEW_KINDS)
    op.create_table(
        "eval_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("transition", sa.String(16), nullable=True),
        sa.Column("known_good", sa.Boolean(), nullable=False),
        sa.Column("cusum", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("incident_run_id", sa.String(64), nullable=True),
        sa.Column("incident_kind", sa.String(16), nullable=True),
        sa.Column("incident_worst", sa.Float(), nullable=True),
        sa.Column("current", sa.Float(), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("mean_difference", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("p_adjusted", sa.Float(), nullable=True),
        sa.Column("n_paired", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("corrected_difference", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_decisions")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_eval_decisions_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "run_id", "feature", "scorer", name=op.f("uq_eval_decisions_run_id_feature_scorer")
        ),
    )
    op.create_index(
        op.f("ix_eval_decisions_suite_feature_scorer_created_at"),
        "eval_decisions",
        ["suite", "feature", "scorer", "created_at"],
    )


def downgrade() -> None:
    """Drop ``eval_decisions`` (the detector starts from complete runs again) and judge drift."""
    op.execute("DELETE FROM alerts WHERE kind = 'judge_drift'")
    with op.batch_alter_table("alerts", copy_from=_alerts(_NEW_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _OLD_KINDS)
    op.drop_index(op.f("ix_eval_decisions_suite_feature_scorer_created_at"), "eval_decisions")
    op.drop_table("eval_decisions")

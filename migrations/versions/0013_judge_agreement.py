"""Judge calibration: each run's agreement of a judge with an eval set's labels.

- ``judge_agreement``: one row per run x calibrated feature x judge (unique),
  with its figures as columns and the confusion matrix, contradictions and
  reasons as JSON, deleted with its run;
- ``ck_alerts_kind``: admits ``judge_agreement`` and ``agreement_ok`` (the
  judge fell under its floor, and came back).

The previous version keeps running against this schema during a rolling
upgrade: it never reads the table and writes neither kind. As in 0006, SQLite
rebuilds ``alerts`` from the full definition given here (``copy_from``).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = (
    "kind IN ('regression', 'recovery', 'judge_drift', 'run_finished', 'outage', 'outage_over')"
)
_NEW_KINDS = (
    "kind IN ('regression', 'recovery', 'judge_drift', 'run_finished', 'outage', "
    "'outage_over', 'judge_agreement', 'agreement_ok')"
)

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _alerts(kinds: str, *, destination: bool) -> sa.Table:
    """``alerts`` as 0006 left it (a copy: migrations never import each other)."""
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
    """Create ``judge_agreement``; widen the alert kinds."""
    with op.batch_alter_table("alerts", copy_from=_alerts(_OLD_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _NEW_KINDS)
    op.create_table(
        "judge_agreement",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("eval_set", sa.String(200), nullable=False),
        sa.Column("scale", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("split", sa.Integer(), nullable=False),
        sa.Column("exact", sa.Float(), nullable=True),
        sa.Column("kappa", sa.Float(), nullable=True),
        sa.Column("spearman", sa.Float(), nullable=True),
        sa.Column("confusion", sa.JSON(), nullable=False),
        sa.Column("contradictions", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_agreement")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_judge_agreement_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "run_id", "feature", "scorer", name=op.f("uq_judge_agreement_run_id_feature_scorer")
        ),
    )
    op.create_index(
        op.f("ix_judge_agreement_suite_feature_scorer_created_at"),
        "judge_agreement",
        ["suite", "feature", "scorer", "created_at"],
    )


def downgrade() -> None:
    """Drop ``judge_agreement`` and the agreement alerts (their history is lost)."""
    op.execute("DELETE FROM alerts WHERE kind IN ('judge_agreement', 'agreement_ok')")
    with op.batch_alter_table("alerts", copy_from=_alerts(_NEW_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _OLD_KINDS)
    op.drop_index(
        op.f("ix_judge_agreement_suite_feature_scorer_created_at"), table_name="judge_agreement"
    )
    op.drop_table("judge_agreement")

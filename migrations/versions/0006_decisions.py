"""Stored decisions: what the detector concluded for every key of every run.

A new table only (``eval_decisions``), so the previous version keeps working
against this schema during a rolling upgrade; it simply writes no decisions,
and runs without decisions count as known-good when complete.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``eval_decisions``."""
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
    """Drop ``eval_decisions`` (the detector starts from complete runs again)."""
    op.drop_index(op.f("ix_eval_decisions_suite_feature_scorer_created_at"), "eval_decisions")
    op.drop_table("eval_decisions")

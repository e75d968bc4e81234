"""Eval sets: cases people label, and their labels versioned by time.

- ``eval_sets``: named sets (unique name) with their scale, the feature whose
  feedback fills them and how far that fill has read (``feedback_cursor``);
- ``eval_cases``: a set's cases, unique on (eval_set_id, case_id);
- ``eval_labels``: append-only labels, indexed (eval_set_id, case_id,
  created_at) for reads "as of" a time and a case's history.

New tables only: the previous version keeps running during a rolling upgrade
and never reads them.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "eval_sets",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scale", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("feature", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feedback_cursor", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_eval_sets_name")),
        sa.CheckConstraint("scale IN ('pass_fail', '1-5')", name=op.f("ck_eval_sets_scale")),
    )
    op.create_table(
        "eval_cases",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("eval_set_id", _ID, nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("expected", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_cases")),
        sa.ForeignKeyConstraint(
            ["eval_set_id"],
            ["eval_sets.id"],
            name=op.f("fk_eval_cases_eval_set_id_eval_sets"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "eval_set_id", "case_id", name=op.f("uq_eval_cases_eval_set_id_case_id")
        ),
    )
    op.create_table(
        "eval_labels",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("eval_set_id", _ID, nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_labels")),
        sa.ForeignKeyConstraint(
            ["eval_set_id"],
            ["eval_sets.id"],
            name=op.f("fk_eval_labels_eval_set_id_eval_sets"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_eval_labels_eval_set_id_case_id_created_at"),
        "eval_labels",
        ["eval_set_id", "case_id", "created_at"],
    )


def downgrade() -> None:
    """Drop the tables (every eval set and label is lost)."""
    op.drop_index(op.f("ix_eval_labels_eval_set_id_case_id_created_at"), table_name="eval_labels")
    op.drop_table("eval_labels")
    op.drop_table("eval_cases")
    op.drop_table("eval_sets")

"""Learned evaluators: versions of scoring code Claude wrote from labelled examples.

- ``learned_evaluators``: one row per version, unique on (name, version) so
  concurrent generations of one name cannot take the same version.

A new table only: the previous version keeps running during a rolling
upgrade and never reads it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``learned_evaluators``."""
    op.create_table(
        "learned_evaluators",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("eval_set", sa.String(200), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_evaluators")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_learned_evaluators_name_version")),
    )


def downgrade() -> None:
    """Drop the table (every learned evaluator is lost)."""
    op.drop_table("learned_evaluators")

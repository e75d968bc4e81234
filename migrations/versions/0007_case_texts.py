"""Each result keeps its case's input and expected answer.

- ``eval_results.input_excerpt``, ``eval_results.expected_excerpt``: what the
  case asked and what it expected, capped like ``output_excerpt``, so the
  dashboard's comparison of two runs shows them even after the dataset file
  changed or was replaced.

Both columns are nullable and added without a default: the previous version
keeps writing results during a rolling upgrade (its rows have no texts, and
the dashboard says so), and the ALTER is instant on Postgres and SQLite.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two nullable text columns."""
    op.add_column("eval_results", sa.Column("input_excerpt", sa.Text(), nullable=True))
    op.add_column("eval_results", sa.Column("expected_excerpt", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop them (the texts are lost; everything else stays)."""
    with op.batch_alter_table("eval_results") as batch:
        batch.drop_column("expected_excerpt")
        batch.drop_column("input_excerpt")

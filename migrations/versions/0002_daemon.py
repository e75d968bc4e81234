"""Add what the daemon needs: the SQLite suite lock table and the recovery index.

- ``suite_locks``: one lease row per suite held by a process, the cross-process
  suite lock on SQLite (Postgres uses advisory locks and leaves it empty);
- ``ix_eval_runs_suite_status``: ``adoptable_run`` and the stale-lock check
  look a suite's queued, interrupted and running runs up by it.

Written by hand to match ``continuous_eval/adapters/db/tables.py``, with the
types spelled out and the names final (``op.f()``), like 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``suite_locks`` and the ``eval_runs`` (suite, status) index."""
    op.create_table(
        "suite_locks",
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("suite", name=op.f("pk_suite_locks")),
    )
    # Plain CREATE INDEX works on SQLite too: no batch table rebuild needed.
    op.create_index(op.f("ix_eval_runs_suite_status"), "eval_runs", ["suite", "status"])


def downgrade() -> None:
    """Drop everything this revision created."""
    op.drop_index(op.f("ix_eval_runs_suite_status"), table_name="eval_runs")
    op.drop_table("suite_locks")

"""Index decisions by (suite, created_at) for the dashboard's verdicts.

The overview shows each suite's newest decisions. Found through this index
it is a walk down one suite's newest rows that stops at the first scheduled
run's; without it every decision ever stored is read (a few hundred
milliseconds at a year of daily runs of 150 keys, and growing).

Only an index: the previous version reads and writes the same rows during a
rolling upgrade.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the index."""
    op.create_index(
        op.f("ix_eval_decisions_suite_created_at"), "eval_decisions", ["suite", "created_at"]
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index(op.f("ix_eval_decisions_suite_created_at"), table_name="eval_decisions")

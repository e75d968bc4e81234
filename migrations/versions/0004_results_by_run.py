"""Index results by (run_id, id) for result pages and the live progress stream.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the index."""
    op.create_index(op.f("ix_eval_results_run_id_id"), "eval_results", ["run_id", "id"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index(op.f("ix_eval_results_run_id_id"), table_name="eval_results")

"""Add the ``alerts`` outbox.

- ``alerts``: one row per alert x channel, written in the transaction that
  finishes a run and delivered afterwards, unique on (key, channel);
- ``ix_alerts_status_next_attempt_at``: the delivery loop's due alerts;
- ``ix_alerts_suite_feature_scorer_kind_created_at``: the newest alert of a
  kind for a feature x scorer (the cooldown check).

Written by hand to match ``continuous_eval/adapters/db/tables.py``, with the
types spelled out and the names final (``op.f()``), like 0001.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    # The store's UTCDateTime is a Python-side wrapper over this column type.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create ``alerts`` with its constraints and indexes."""
    op.create_table(
        "alerts",
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_alerts_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("kind IN ('regression', 'recovery')", name=op.f("ck_alerts_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'dead', 'suppressed')", name=op.f("ck_alerts_status")
        ),
        sa.UniqueConstraint("key", "channel", name=op.f("uq_alerts_key_channel")),
    )
    op.create_index(
        op.f("ix_alerts_status_next_attempt_at"), "alerts", ["status", "next_attempt_at"]
    )
    op.create_index(
        op.f("ix_alerts_suite_feature_scorer_kind_created_at"),
        "alerts",
        ["suite", "feature", "scorer", "kind", "created_at"],
    )
    op.create_index(op.f("ix_alerts_run_id"), "alerts", ["run_id"])


def downgrade() -> None:
    """Drop everything this revision created."""
    op.drop_index(op.f("ix_alerts_run_id"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_suite_feature_scorer_kind_created_at"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_status_next_attempt_at"), table_name="alerts")
    op.drop_table("alerts")

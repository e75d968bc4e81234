"""Run-completion notices: a run's callbacks, and outbox rows addressed to them.

- ``eval_runs.callbacks``: where a run's completion is posted (JSON list of
  ``{channel, url}``), fixed when the run is created;
- ``alerts.destination``: the URL of a notice, for channels without a fixed
  address;
- ``ck_alerts_kind``: admits ``run_finished``.

Both columns are nullable and the old kinds stay valid, so the previous
version keeps working against this schema during a rolling upgrade.

SQLite cannot alter a CHECK constraint: batch mode rebuilds ``alerts`` from
the full table given here (``copy_from``), not from reflection, so
``alembic upgrade --sql`` can print the migration without a database.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('regression', 'recovery')"
_NEW_KINDS = "kind IN ('regression', 'recovery', 'run_finished')"


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _alerts(kinds: str, *, destination: bool) -> sa.Table:
    """``alerts`` as 0003 created it, with this revision's changes when asked for."""
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
    """Add the columns and widen the kinds."""
    # ADD COLUMN needs no table rebuild on any backend.
    op.add_column("eval_runs", sa.Column("callbacks", sa.JSON(), nullable=True))
    op.add_column("alerts", sa.Column("destination", sa.Text(), nullable=True))
    with op.batch_alter_table("alerts", copy_from=_alerts(_OLD_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _NEW_KINDS)


def downgrade() -> None:
    """Drop the notices and the columns (the notices could not be stored any more)."""
    op.execute("DELETE FROM alerts WHERE kind = 'run_finished'")
    with op.batch_alter_table("alerts", copy_from=_alerts(_NEW_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _OLD_KINDS)
        batch.drop_column("destination")
    with op.batch_alter_table("eval_runs") as batch:
        batch.drop_column("callbacks")

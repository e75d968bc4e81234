"""Run-completion notices, outage notices and the ``inconclusive`` status.

- ``eval_runs.callbacks``: where a run's completion is posted (JSON list of
  ``{channel, url}``), fixed when the run is created;
- ``ck_eval_runs_status``: admits ``inconclusive`` (a run that scored too
  little to say anything about quality);
- ``alerts.destination``: the URL of a notice, for channels without a fixed
  address;
- ``ck_alerts_kind``: admits ``run_finished``, ``outage`` and ``outage_over``.

Both columns are nullable and the old values stay valid, so the previous
version keeps working against this schema during a rolling upgrade.

SQLite cannot alter a CHECK constraint: batch mode rebuilds the two tables
from the full definitions given here (``copy_from``), not from reflection,
so ``alembic upgrade --sql`` can print the migration without a database.

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
_NEW_KINDS = "kind IN ('regression', 'recovery', 'run_finished', 'outage', 'outage_over')"
_OLD_STATUSES = (
    "status IN ('queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled', "
    "'skipped', 'interrupted')"
)
_NEW_STATUSES = (
    "status IN ('queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled', "
    "'skipped', 'interrupted', 'inconclusive')"
)


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


def _counter(name: str, type_: type[sa.types.TypeEngine[Any]] = sa.Integer) -> sa.Column[Any]:
    return sa.Column(name, type_(), nullable=False, server_default=sa.text("0"))


def _eval_runs(statuses: str) -> sa.Table:
    """``eval_runs`` as 0001 and 0002 left it, with this revision's ``callbacks``."""
    table = sa.Table(
        "eval_runs",
        sa.MetaData(),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("run_type", sa.String(16), nullable=False, server_default=sa.text("'manual'")),
        _timestamp("scheduled_for"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _timestamp("lease_expires_at"),
        _timestamp("heartbeat_at"),
        _timestamp("created_at", nullable=False),
        _timestamp("started_at"),
        _timestamp("finished_at"),
        sa.Column("features", sa.JSON(), nullable=False),
        _counter("cases_total"),
        _counter("cases_done"),
        _counter("total"),
        _counter("scored"),
        _counter("errored"),
        _counter("judge_input_tokens", sa.BigInteger),
        _counter("judge_output_tokens", sa.BigInteger),
        _counter("judge_cost_usd", sa.Float),
        _counter("target_input_tokens", sa.BigInteger),
        _counter("target_output_tokens", sa.BigInteger),
        _counter("target_cost_usd", sa.Float),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("fingerprint_parts", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("spec_hash", sa.String(64), nullable=True),
        sa.Column("callbacks", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_eval_runs"),
        sa.CheckConstraint("run_type IN ('scheduled', 'manual')", name="ck_eval_runs_run_type"),
        sa.CheckConstraint(statuses, name="ck_eval_runs_status"),
        sa.UniqueConstraint("suite", "scheduled_for", name="uq_eval_runs_suite_scheduled_for"),
        sa.UniqueConstraint("idempotency_key", name="uq_eval_runs_idempotency_key"),
    )
    c = table.c
    sa.Index("ix_eval_runs_suite_run_type_started_at", c.suite, c.run_type, c.started_at)
    sa.Index("ix_eval_runs_created_at_id", c.created_at, c.id)
    sa.Index("ix_eval_runs_suite_status", c.suite, c.status)
    return table


def upgrade() -> None:
    """Add the columns and widen the statuses and kinds."""
    # ADD COLUMN needs no table rebuild on any backend.
    op.add_column("eval_runs", sa.Column("callbacks", sa.JSON(), nullable=True))
    op.add_column("alerts", sa.Column("destination", sa.Text(), nullable=True))
    with op.batch_alter_table("eval_runs", copy_from=_eval_runs(_OLD_STATUSES)) as batch:
        batch.drop_constraint(op.f("ck_eval_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_eval_runs_status"), _NEW_STATUSES)
    with op.batch_alter_table("alerts", copy_from=_alerts(_OLD_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _NEW_KINDS)


def downgrade() -> None:
    """Drop what the old schema cannot hold: notices, and the inconclusive status (as failed)."""
    op.execute("DELETE FROM alerts WHERE kind IN ('run_finished', 'outage', 'outage_over')")
    op.execute("UPDATE eval_runs SET status = 'failed' WHERE status = 'inconclusive'")
    with op.batch_alter_table("alerts", copy_from=_alerts(_NEW_KINDS, destination=True)) as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_kind"), _OLD_KINDS)
        batch.drop_column("destination")
    with op.batch_alter_table("eval_runs", copy_from=_eval_runs(_NEW_STATUSES)) as batch:
        batch.drop_constraint(op.f("ck_eval_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_eval_runs_status"), _OLD_STATUSES)
        batch.drop_column("callbacks")

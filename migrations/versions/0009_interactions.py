"""Recorded production traffic, feedback on it, and agents' steps per case.

- ``interactions``: one row per ingested GenAI span, unique on (trace_id,
  span_id) so a re-sent span is stored once, indexed for an online run's
  sample (feature, sample_key, started_at), retention by age (feature,
  started_at) and the row cap (feature, id);
- ``interaction_feedback``: people's scores and labels of traces;
- ``case_steps``: the steps an agent target streamed for each case of a run;
- ``eval_results.trace_id``: the interaction an online case scored.

New tables and one nullable column: the previous version keeps running
during a rolling upgrade and never reads them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the three tables and add ``eval_results.trace_id``."""
    op.add_column("eval_results", sa.Column("trace_id", sa.String(32), nullable=True))
    op.create_table(
        "interactions",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=False),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=True),
        sa.Column("operation", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sample_key", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("trace_id", "span_id", name=op.f("uq_interactions_trace_id_span_id")),
    )
    op.create_index(
        op.f("ix_interactions_feature_started_at"), "interactions", ["feature", "started_at"]
    )
    op.create_index(
        op.f("ix_interactions_feature_sample_key_started_at"),
        "interactions",
        ["feature", "sample_key", "started_at"],
    )
    op.create_index(op.f("ix_interactions_feature_id"), "interactions", ["feature", "id"])
    op.create_table(
        "interaction_feedback",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("span_id", sa.String(16), nullable=True),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction_feedback")),
    )
    op.create_index(
        op.f("ix_interaction_feedback_trace_id_id"), "interaction_feedback", ["trace_id", "id"]
    )
    op.create_table(
        "case_steps",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_steps")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_case_steps_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "run_id",
            "feature",
            "case_id",
            "seq",
            name=op.f("uq_case_steps_run_id_feature_case_id_seq"),
        ),
    )


def downgrade() -> None:
    """Drop the tables and the column (recorded traffic and steps are lost)."""
    op.drop_table("case_steps")
    op.drop_index(op.f("ix_interaction_feedback_trace_id_id"), table_name="interaction_feedback")
    op.drop_table("interaction_feedback")
    op.drop_index(op.f("ix_interactions_feature_id"), table_name="interactions")
    op.drop_index(op.f("ix_interactions_feature_sample_key_started_at"), table_name="interactions")
    op.drop_index(op.f("ix_interactions_feature_started_at"), table_name="interactions")
    op.drop_table("interactions")
    with op.batch_alter_table("eval_results") as batch:
        batch.drop_column("trace_id")

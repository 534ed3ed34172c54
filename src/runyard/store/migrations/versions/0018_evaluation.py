"""expected outputs, feedback and evaluation batches (issue 19)

Revision ID: 0018_evaluation
Revises: 0017_mcp_tools
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0018_evaluation"
down_revision = "0017_mcp_tools"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "expected_sets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("target_id", sa.String(40), nullable=False),
        sa.Column("target_name", sa.String(64), nullable=False),
        sa.Column("example_id", sa.String(200), nullable=False),
        sa.Column("has_output", sa.Boolean, nullable=False),
        sa.Column("output", JSON),
        sa.Column("options", JSON, nullable=False),
        sa.Column("source_run_id", sa.String(40)),
        sa.Column("created_by", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("workspace_id", "target_id", "example_id"),
    )
    op.create_table(
        "expected_files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("expected_id", sa.String(40), sa.ForeignKey("expected_sets.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("blob_key", sa.String(300), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("expected_id", "filename"),
    )
    op.create_table(
        "run_feedback",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False, unique=True),
        sa.Column("rating", sa.String(8)),
        sa.Column("score", sa.Float),
        sa.Column("comment", sa.Text),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("has_corrected_output", sa.Boolean, nullable=False),
        sa.Column("corrected_output", JSON),
        sa.Column("resolved", sa.Boolean, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("resolved_by", sa.String(40)),
        sa.Column("updated_by", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "eval_batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("target_type", sa.String(10), nullable=False),
        sa.Column("target_id", sa.String(40), nullable=False),
        sa.Column("target_name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("source", JSON, nullable=False),
        sa.Column("example_count", sa.Integer, nullable=False),
        sa.Column("errors", JSON, nullable=False),
        sa.Column("cancelled_at", TS),
        sa.Column("created_by", sa.String(40)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_eval_batches_ws_target", "eval_batches", ["workspace_id", "target_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_eval_batches_ws_target", table_name="eval_batches")
    op.drop_table("eval_batches")
    op.drop_table("run_feedback")
    op.drop_table("expected_files")
    op.drop_table("expected_sets")

"""cleaning tasks: model-proposed SQL transforms committed as new datasets (issue 17)

Revision ID: 0012_cleaning
Revises: 0011_links
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012_cleaning"
down_revision = "0011_links"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cleaning_tasks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("source_dataset_id", sa.String(length=40), nullable=False),
        sa.Column("source_namespace", sa.String(length=64), nullable=False),
        sa.Column("source_dataset", sa.String(length=64), nullable=False),
        sa.Column("source_snapshot", sa.Integer(), nullable=True),
        sa.Column("output_namespace", sa.String(length=64), nullable=False),
        sa.Column("output_dataset", sa.String(length=64), nullable=False),
        sa.Column("output_dataset_id", sa.String(length=40), nullable=True),
        sa.Column("prompts", JSON, nullable=False),
        sa.Column("sql", sa.Text(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", JSON, nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("usage", JSON, nullable=False),
        sa.Column("input_rows", sa.BigInteger(), nullable=True),
        sa.Column("output_rows", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("token_id", sa.String(length=40), nullable=True),
        sa.Column("worker_id", sa.String(length=40), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cleaning_tasks"),
    )
    op.create_index("ix_cleaning_tasks_status", "cleaning_tasks", ["status", "created_at"])
    op.create_index("ix_cleaning_tasks_source_dataset_id", "cleaning_tasks", ["source_dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_cleaning_tasks_source_dataset_id", table_name="cleaning_tasks")
    op.drop_index("ix_cleaning_tasks_status", table_name="cleaning_tasks")
    op.drop_table("cleaning_tasks")

"""ingest proxy: auto-modelling pipeline runs and their progress events (issue 17)

Revision ID: 0013_ingest_proxy
Revises: 0012_cleaning
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013_ingest_proxy"
down_revision = "0012_cleaning"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_proxy_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("token_id", sa.String(length=40), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=True),
        sa.Column("request", JSON, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("hook", JSON, nullable=True),
        sa.Column("trace", JSON, nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=True),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.Column("resumes", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=60), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_ingest_proxy_runs"),
    )
    op.create_index("ix_ingest_proxy_runs_lease_expires_at", "ingest_proxy_runs", ["lease_expires_at"])
    op.create_table(
        "ingest_proxy_events",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "idx", name="pk_ingest_proxy_events"),
    )


def downgrade() -> None:
    op.drop_table("ingest_proxy_events")
    op.drop_index("ix_ingest_proxy_runs_lease_expires_at", table_name="ingest_proxy_runs")
    op.drop_table("ingest_proxy_runs")

"""connections: postgres, mysql, http/openapi, odata, s3 and mcp settings with secret parts (issue 18)

Revision ID: 0014_connections
Revises: 0013_ingest_proxy
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014_connections"
down_revision = "0013_ingest_proxy"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("owned_secrets", JSON, nullable=False),
        sa.Column("status_state", sa.String(length=10), nullable=False),
        sa.Column("checked_at", TS, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("status_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_connections_workspace_id_name"),
    )
    # The connections a tool version declares (context.connection in its runs).
    with op.batch_alter_table("tool_versions") as batch:
        batch.add_column(sa.Column("connections", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("connections")
    op.drop_table("connections")

"""workspace files and storage quotas (issue 18)

Revision ID: 0015_workspace_files
Revises: 0014_connections
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015_workspace_files"
down_revision = "0014_connections"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workspace_files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspace_files"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_workspace_files_workspace_id_name"),
    )
    with op.batch_alter_table("tool_versions") as batch:
        batch.add_column(sa.Column("files", JSON, nullable=True))
    op.create_index("ix_run_artifacts_ws_size", "run_artifacts", ["workspace_id", "size"])


def downgrade() -> None:
    op.drop_index("ix_run_artifacts_ws_size", table_name="run_artifacts")
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("files")
    op.drop_table("workspace_files")

"""retry policy and network: tool_versions.retry_on, retry_backoff_s and network; runs.not_before (a retry's backoff)

Revision ID: 0004_retry_policy
Revises: 0003_reuse_process
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_retry_policy"
down_revision = "0003_reuse_process"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        # NULL: the default policy (only a lost or stopped worker is retried).
        batch.add_column(sa.Column("retry_on", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                                      "postgresql"), nullable=True))
        batch.add_column(sa.Column("retry_backoff_s", sa.Float(), nullable=False, server_default=sa.text("0")))
        # False: the tool's runs cannot open any socket (the sandbox's seccomp filter).
        batch.add_column(sa.Column("network", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("not_before")
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("network")
        batch.drop_column("retry_backoff_s")
        batch.drop_column("retry_on")

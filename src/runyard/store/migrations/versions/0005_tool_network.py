"""tool_versions.network: whether the tool's runs may open sockets at all

Revision ID: 0005_tool_network
Revises: 0004_retry_policy
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_tool_network"
down_revision = "0004_retry_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.add_column(sa.Column("network", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("network")

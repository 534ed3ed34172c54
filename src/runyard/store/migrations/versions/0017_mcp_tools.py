"""connections: the tools an mcp connection's last successful verify listed (issue 18, runyard as an MCP client)

Revision ID: 0017_mcp_tools
Revises: 0016_plans
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0017_mcp_tools"
down_revision = "0016_plans"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("connections", sa.Column("mcp_tools", JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("connections", "mcp_tools")

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
    # The MCP servers a tool version declares and the tool aliases it expects them to list.
    with op.batch_alter_table("tool_versions") as batch:
        batch.add_column(sa.Column("mcp_server_names", JSON, nullable=True))
        batch.add_column(sa.Column("expected_tools", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("expected_tools")
        batch.drop_column("mcp_server_names")
    op.drop_column("connections", "mcp_tools")

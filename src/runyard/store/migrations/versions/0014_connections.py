"""connections: postgres, mysql, http/openapi, odata, s3 and mcp settings with secret parts (issue 18)

Revision ID: 0014_connections
Revises: 0013_ingest_proxy
"""
from __future__ import annotations

revision = "0014_connections"
down_revision = "0013_ingest_proxy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

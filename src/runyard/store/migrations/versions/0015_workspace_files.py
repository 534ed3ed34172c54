"""workspace files and storage quotas (issue 18)

Revision ID: 0015_workspace_files
Revises: 0014_connections
"""
from __future__ import annotations

revision = "0015_workspace_files"
down_revision = "0014_connections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

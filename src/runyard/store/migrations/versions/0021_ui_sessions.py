"""web UI sessions (issue 20)

Revision ID: 0021_ui_sessions
Revises: 0020_tool_scripts
"""
from __future__ import annotations

revision = "0021_ui_sessions"
down_revision = "0020_tool_scripts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

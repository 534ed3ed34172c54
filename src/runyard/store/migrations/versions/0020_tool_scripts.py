"""script-mode tools, renames, per-run timeouts (issue 19)

Revision ID: 0020_tool_scripts
Revises: 0019_run_search
"""
from __future__ import annotations

revision = "0020_tool_scripts"
down_revision = "0019_run_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

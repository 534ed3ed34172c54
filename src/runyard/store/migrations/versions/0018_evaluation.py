"""expected outputs, feedback and evaluation batches (issue 19)

Revision ID: 0018_evaluation
Revises: 0017_mcp_tools
"""
from __future__ import annotations

revision = "0018_evaluation"
down_revision = "0017_mcp_tools"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

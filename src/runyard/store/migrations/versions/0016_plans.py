"""workspace plans and shared rate-limit allowance leases (issue 18)

Revision ID: 0016_plans
Revises: 0015_workspace_files
"""
from __future__ import annotations

revision = "0016_plans"
down_revision = "0015_workspace_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

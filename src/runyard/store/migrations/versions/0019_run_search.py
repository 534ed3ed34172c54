"""run search columns and indexes (issue 19)

Revision ID: 0019_run_search
Revises: 0018_evaluation
"""
from __future__ import annotations

revision = "0019_run_search"
down_revision = "0018_evaluation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

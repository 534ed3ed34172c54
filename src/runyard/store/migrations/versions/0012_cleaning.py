"""cleaning tasks: model-proposed SQL transforms committed as new datasets (issue 17)

Revision ID: 0012_cleaning
Revises: 0011_links
"""
from __future__ import annotations

revision = "0012_cleaning"
down_revision = "0011_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

"""ingest proxy: auto-modelling pipeline runs and their progress events (issue 17)

Revision ID: 0013_ingest_proxy
Revises: 0012_cleaning
"""
from __future__ import annotations

revision = "0013_ingest_proxy"
down_revision = "0012_cleaning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

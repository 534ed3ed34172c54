"""links between datasets, column sketches and ingestion pipelines (issue 17)

Revision ID: 0011_links
Revises: 0010_llm_providers
"""
from __future__ import annotations

revision = "0011_links"
down_revision = "0010_llm_providers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

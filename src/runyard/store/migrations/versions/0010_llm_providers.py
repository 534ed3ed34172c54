"""the language-model layer: providers (issue 17)

Revision ID: 0010_llm_providers
Revises: 0009_workflows
"""
from __future__ import annotations

revision = "0010_llm_providers"
down_revision = "0009_workflows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

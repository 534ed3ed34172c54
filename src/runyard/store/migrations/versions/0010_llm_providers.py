"""the language-model layer: providers (issue 17)

Revision ID: 0010_llm_providers
Revises: 0009_workflows
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_llm_providers"
down_revision = "0009_workflows"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "llm_providers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("masked_api_key", sa.String(length=32), nullable=True),
        sa.Column("default_model", sa.String(length=200), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_providers"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_llm_providers_workspace_id_name"),
    )
    op.create_index("uq_llm_providers_default", "llm_providers", ["workspace_id"], unique=True,
                    sqlite_where=sa.text("is_default IS 1"), postgresql_where=sa.text("is_default IS true"))


def downgrade() -> None:
    op.drop_index("uq_llm_providers_default", table_name="llm_providers")
    op.drop_table("llm_providers")

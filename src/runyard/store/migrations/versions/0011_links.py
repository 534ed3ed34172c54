"""links between datasets, column sketches and ingestion pipelines (issue 17)

Revision ID: 0011_links
Revises: 0010_llm_providers
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011_links"
down_revision = "0010_llm_providers"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("signature", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("match_type", sa.String(length=20), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("from_dataset_id", sa.String(length=40), nullable=False),
        sa.Column("from_columns", JSON, nullable=False),
        sa.Column("to_dataset_id", sa.String(length=40), nullable=False),
        sa.Column("to_columns", JSON, nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("pair_count", sa.BigInteger(), nullable=True),
        sa.Column("pairs_key", sa.String(length=300), nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("computed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_links"),
        sa.UniqueConstraint("workspace_id", "signature", name="uq_links_workspace_id_signature"),
    )
    op.create_index("ix_links_from_dataset_id", "links", ["from_dataset_id"])
    op.create_index("ix_links_to_dataset_id", "links", ["to_dataset_id"])
    op.create_table(
        "column_sketches",
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("column_name", sa.String(length=255), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("column_type", sa.String(length=20), nullable=False),
        sa.Column("manifest_version", sa.Integer(), nullable=False),
        sa.Column("sketch", JSON, nullable=False),
        sa.Column("computed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", "column_name", name="pk_column_sketches"),
    )
    op.create_index("ix_column_sketches_workspace_id", "column_sketches", ["workspace_id"])


def downgrade() -> None:
    op.drop_index("ix_column_sketches_workspace_id", table_name="column_sketches")
    op.drop_table("column_sketches")
    op.drop_index("ix_links_to_dataset_id", table_name="links")
    op.drop_index("ix_links_from_dataset_id", table_name="links")
    op.drop_table("links")

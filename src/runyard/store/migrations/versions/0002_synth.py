"""synthetic data: templates, template versions, saved sets, set versions

Revision ID: 0002_synth
Revises: 0001_core
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_synth"
down_revision = "0001_core"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "synth_templates",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synth_templates")),
    )
    op.create_index("uq_synth_templates_live_name", "synth_templates", ["workspace_id", "name"], unique=True,
                    sqlite_where=sa.text("deleted_at IS NULL"), postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "synth_template_versions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("template_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["template_id"], ["synth_templates.id"],
                                name=op.f("fk_synth_template_versions_template_id_synth_templates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synth_template_versions")),
        sa.UniqueConstraint("template_id", "version", name=op.f("uq_synth_template_versions_template_id_version")),
    )
    op.create_table(
        "synth_sets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synth_sets")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_synth_sets_workspace_id_name")),
    )
    op.create_table(
        "synth_set_versions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("set_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("columns", JSON, nullable=False),
        sa.Column("blob_key", sa.String(300), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("source", JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["set_id"], ["synth_sets.id"], name=op.f("fk_synth_set_versions_set_id_synth_sets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synth_set_versions")),
        sa.UniqueConstraint("set_id", "version", name=op.f("uq_synth_set_versions_set_id_version")),
    )


def downgrade() -> None:
    op.drop_table("synth_set_versions")
    op.drop_table("synth_sets")
    op.drop_table("synth_template_versions")
    op.drop_index("uq_synth_templates_live_name", table_name="synth_templates")
    op.drop_table("synth_templates")

"""workflows: folders, workflows, workflow_versions; runs' step columns, acting user and
step policy; webhook payload mapping and replay records

Revision ID: 0009_workflows
Revises: 0008_run_filters
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_workflows"
down_revision = "0008_run_filters"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_folders"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_folders_workspace_id_name"),
    )
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("folder_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
    )
    op.create_index("uq_workflows_live_name", "workflows", ["workspace_id", "name"], unique=True,
                    sqlite_where=sa.text("deleted_at IS NULL"), postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_index("ix_workflows_ws_folder", "workflows", ["workspace_id", "folder_id"], unique=False)
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("workflow_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], name="fk_workflow_versions_workflow_id_workflows"),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_versions"),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_id_version"),
        sa.UniqueConstraint("workflow_id", "tag", name="uq_workflow_versions_workflow_id_tag"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("webhook_id", "digest", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_expiry", "webhook_deliveries", ["expires_at"], unique=False)
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("mapping", JSON, nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("step_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("step_key", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("item_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("run_policy", JSON, nullable=True))
        batch.create_unique_constraint("uq_runs_parent_run_id_step_key", ["parent_run_id", "step_key"])
    op.execute("UPDATE runs SET user_id = (SELECT tokens.user_id FROM tokens WHERE tokens.id = runs.token_id) "
               "WHERE token_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_parent_run_id_step_key", type_="unique")
        for column in ("run_policy", "user_id", "item_index", "step_key", "step_id"):
            batch.drop_column(column)
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("mapping")
    op.drop_index("ix_webhook_deliveries_expiry", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("workflow_versions")
    op.drop_index("ix_workflows_ws_folder", table_name="workflows")
    op.drop_index("uq_workflows_live_name", table_name="workflows")
    op.drop_table("workflows")
    op.drop_table("folders")

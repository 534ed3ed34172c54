"""Workflow tables: folders, workflows and their versions (issue 16).

A workflow's published versions are immutable (a run points at the one it used: its
definition snapshot); a workflow has at most one draft, numbered when published. A
workflow run is a row of ``runs`` (``type = 'workflow'``) whose steps are child runs
(``parent_run_id``, ``step_id``, ``step_key``).
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

folders = sa.Table(
    "folders", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

workflows = sa.Table(
    "workflows", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # workflow | block
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("folder_id", sa.String(40)),
    sa.Column("user_id", sa.String(40)),  # who created it
    sa.Column("latest_version", sa.Integer),  # the newest published version (NULL: only a draft)
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS),
)
sa.Index("uq_workflows_live_name", workflows.c.workspace_id, workflows.c.name, unique=True,
         sqlite_where=workflows.c.deleted_at.is_(None), postgresql_where=workflows.c.deleted_at.is_(None))
sa.Index("ix_workflows_ws_folder", workflows.c.workspace_id, workflows.c.folder_id)

workflow_versions = sa.Table(
    "workflow_versions", metadata,
    id_column(), workspace_column(),
    sa.Column("workflow_id", sa.String(40), sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("version", sa.Integer),  # NULL while a draft
    sa.Column("status", sa.String(20), nullable=False),  # draft | published
    sa.Column("tag", sa.String(64)),
    sa.Column("source", sa.Text, nullable=False),  # the YAML/JSON text as saved
    sa.Column("definition", JSON, nullable=False),  # the parsed definition as JSON values
    sa.Column("user_id", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("published_at", TS),
    sa.UniqueConstraint("workflow_id", "version"),
    sa.UniqueConstraint("workflow_id", "tag"),
)

# Webhook deliveries seen inside a hook's signature window: a signed request replayed
# within that window is refused (the signature digest is the key).
webhook_deliveries = sa.Table(
    "webhook_deliveries", metadata,
    sa.Column("webhook_id", sa.String(40), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("expires_at", TS, nullable=False),
)
sa.Index("ix_webhook_deliveries_expiry", webhook_deliveries.c.expires_at)

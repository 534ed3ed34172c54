"""run search columns and indexes (issue 19)

Revision ID: 0019_run_search
Revises: 0018_evaluation

Runs gain ``project``, ``app`` and ``source_ref`` columns (filled from their tags, for
the runs that have them), composite indexes for equality within a time range
(workspace, column, created_at, id) and, on PostgreSQL, pg_trgm indexes for substring
search on the searchable text columns.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_run_search"
down_revision = "0018_evaluation"
branch_labels = None
depends_on = None

NEW_COLUMNS = ("project", "app", "source_ref")
TAG_COLUMNS = ("session", "batch_id", "example_id", "project", "app", "source_ref")
SEARCHABLE_TEXT = ("tool_name", "example_id", "session", "project", "source_ref")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("runs") as batch:
        for name in NEW_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(200), nullable=True))
    for name in NEW_COLUMNS:  # the runs made before: their tags say it
        value = f"tags ->> '{name}'" if postgres else f"json_extract(tags, '$.{name}')"
        op.execute(f"UPDATE runs SET {name} = {value} WHERE {value} IS NOT NULL")
    op.drop_index("ix_runs_ws_session", table_name="runs")
    op.create_index("ix_runs_ws_created", "runs", ["workspace_id", "created_at", "id"])
    op.create_index("ix_runs_ws_tool_name_created", "runs", ["workspace_id", "tool_name", "created_at", "id"])
    op.create_index("ix_runs_ws_status_created", "runs", ["workspace_id", "status", "created_at", "id"])
    for name in TAG_COLUMNS:
        where = sa.text(f"{name} IS NOT NULL")
        op.create_index(f"ix_runs_ws_{name}_created", "runs", ["workspace_id", name, "created_at", "id"],
                        sqlite_where=where, postgresql_where=where)
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name in SEARCHABLE_TEXT:  # (on SQLite an empty index: see store.tables)
        op.create_index(f"ix_runs_{name}_trgm", "runs", [name], postgresql_using="gin",
                        postgresql_ops={name: "gin_trgm_ops"}, sqlite_where=sa.text("0"),
                        postgresql_where=None if name == "tool_name" else sa.text(f"{name} IS NOT NULL"))


def downgrade() -> None:
    for name in SEARCHABLE_TEXT:
        op.drop_index(f"ix_runs_{name}_trgm", table_name="runs")
    for name in TAG_COLUMNS:
        op.drop_index(f"ix_runs_ws_{name}_created", table_name="runs")
    for name in ("ix_runs_ws_status_created", "ix_runs_ws_tool_name_created", "ix_runs_ws_created"):
        op.drop_index(name, table_name="runs")
    op.create_index("ix_runs_ws_session", "runs", ["workspace_id", "session"])
    with op.batch_alter_table("runs") as batch:
        for name in reversed(NEW_COLUMNS):
            batch.drop_column(name)

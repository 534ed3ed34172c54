"""script-mode tools, renames, per-run timeouts (issue 19)

Tool versions gain ``mode`` (function | script) and ``output_vars``; tools gain
``owner_id``, the user a private tool belongs to. Tools made before owners were recorded
were visible to every user of their workspace: they become ``public``, which now says so.
A run's own ``timeout_s`` lives in its ``run_policy`` (as a workflow step's does), and a
rename needs no column: a run is created only if its tool still has the name it was read by.

Revision ID: 0020_tool_scripts
Revises: 0019_run_search
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0020_tool_scripts"
down_revision = "0019_run_search"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.add_column(sa.Column("mode", sa.String(10), nullable=False, server_default="function"))
        batch.add_column(sa.Column("output_vars", JSON, nullable=True))
    with op.batch_alter_table("tools") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(40), nullable=True))
    op.execute(sa.text("UPDATE tools SET visibility = 'public'"))


def downgrade() -> None:
    with op.batch_alter_table("tools") as batch:
        batch.drop_column("owner_id")
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("output_vars")
        batch.drop_column("mode")

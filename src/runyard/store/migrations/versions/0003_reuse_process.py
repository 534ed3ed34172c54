"""tool versions: reuse_process (successive runs may share a process)

Revision ID: 0003_reuse_process
Revises: 0002_synth
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_reuse_process"
down_revision = "0002_synth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.add_column(sa.Column("reuse_process", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("tool_versions") as batch:
        batch.drop_column("reuse_process")

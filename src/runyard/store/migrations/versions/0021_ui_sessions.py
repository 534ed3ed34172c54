"""web UI sessions (issue 20)

Revision ID: 0021_ui_sessions
Revises: 0020_tool_scripts
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_ui_sessions"
down_revision = "0020_tool_scripts"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workspace_id", sa.String(40), nullable=False),
        sa.Column("cookie_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40)),
        sa.Column("owns_token", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("client_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(200)),
    )
    op.create_index("ix_ui_sessions_token", "ui_sessions", ["token_id"])
    op.create_table(
        "ui_sign_in_failures",
        sa.Column("subject_hash", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", TS, nullable=False),
        sa.Column("locked_until", TS),
    )


def downgrade() -> None:
    op.drop_table("ui_sign_in_failures")
    op.drop_index("ix_ui_sessions_token", table_name="ui_sessions")
    op.drop_table("ui_sessions")

"""run filters: runs.type and runs.triggered_by (who or what started a run), indexed for listing

Revision ID: 0008_run_filters
Revises: 0007_email_triggers
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_run_filters"
down_revision = "0007_email_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("type", sa.String(length=20), nullable=False, server_default="tool"))
        batch.add_column(sa.Column("triggered_by", sa.String(length=320), nullable=True))
    # Runs started by a schedule, a webhook or an email trigger held its id in token_id: it
    # moves to triggered_by (they have no creating token). The others: their token's user.
    op.execute("UPDATE runs SET triggered_by = token_id, token_id = NULL "
               "WHERE trigger IN ('schedule', 'webhook', 'email') AND token_id IS NOT NULL")
    op.execute("UPDATE runs SET triggered_by = (SELECT tokens.user_id FROM tokens WHERE tokens.id = runs.token_id) "
               "WHERE triggered_by IS NULL AND token_id IS NOT NULL")
    op.create_index("ix_runs_ws_triggered_by", "runs", ["workspace_id", "triggered_by", "id"], unique=False)
    op.create_index("ix_runs_parent", "runs", ["parent_run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_parent", table_name="runs")
    op.drop_index("ix_runs_ws_triggered_by", table_name="runs")
    op.execute("UPDATE runs SET token_id = triggered_by WHERE trigger IN ('schedule', 'webhook', 'email')")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("triggered_by")
        batch.drop_column("type")

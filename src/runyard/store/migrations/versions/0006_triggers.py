"""triggers: schedules and webhooks

Revision ID: 0006_triggers
Revises: 0005_data_workspace
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_triggers"
down_revision = "0005_data_workspace"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('target_kind', sa.String(length=20), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('inputs', JSON, nullable=False),
    sa.Column('cron', sa.String(length=200), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('interval_s', sa.Float(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('overlap', sa.String(length=20), nullable=False),
    sa.Column('max_catch_up', sa.Integer(), nullable=False),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_id', sa.String(length=40), nullable=True),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules'))
    )
    op.create_index('ix_schedules_due', 'schedules', ['enabled', 'next_fire_at'], unique=False)
    op.create_index('ix_schedules_ws_user', 'schedules', ['workspace_id', 'user_id', 'id'], unique=False)
    op.create_table('webhooks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('target_kind', sa.String(length=20), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('signature', JSON, nullable=True),
    sa.Column('rate_per_s', sa.Float(), nullable=False),
    sa.Column('burst', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_webhooks_token_hash'))
    )
    op.create_index('ix_webhooks_ws_user', 'webhooks', ['workspace_id', 'user_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhooks_ws_user', table_name='webhooks')
    op.drop_table('webhooks')
    op.drop_index('ix_schedules_ws_user', table_name='schedules')
    op.drop_index('ix_schedules_due', table_name='schedules')
    op.drop_table('schedules')

"""email triggers: triggers, their aliases, and a record per received message

Revision ID: 0007_email_triggers
Revises: 0006_triggers
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_email_triggers"
down_revision = "0006_triggers"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('email_triggers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('target_kind', sa.String(length=20), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('allowed_senders', JSON, nullable=False),
    sa.Column('max_message_bytes', sa.Integer(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_triggers'))
    )
    op.create_index('ix_email_triggers_ws_user', 'email_triggers', ['workspace_id', 'user_id', 'id'], unique=False)
    op.create_table('email_aliases',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('trigger_id', sa.String(length=40), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_aliases')),
    sa.UniqueConstraint('address', name=op.f('uq_email_aliases_address'))
    )
    op.create_index('ix_email_aliases_trigger', 'email_aliases', ['trigger_id', 'id'], unique=False)
    op.create_table('email_records',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('trigger_id', sa.String(length=40), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('recipients', JSON, nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=100), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=1000), nullable=True),
    sa.Column('run_id', sa.String(length=40), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_records'))
    )
    op.create_index('ix_email_records_trigger', 'email_records', ['trigger_id', 'id'], unique=False)
    op.create_index('ix_email_records_ws', 'email_records', ['workspace_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_email_records_ws', table_name='email_records')
    op.drop_index('ix_email_records_trigger', table_name='email_records')
    op.drop_table('email_records')
    op.drop_index('ix_email_aliases_trigger', table_name='email_aliases')
    op.drop_table('email_aliases')
    op.drop_index('ix_email_triggers_ws_user', table_name='email_triggers')
    op.drop_table('email_triggers')

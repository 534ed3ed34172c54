"""data workspace: users, namespaces, members, datasets, ingestions, uploads; tokens.user_id;
token tool restrictions stored by tool id

Revision ID: 0005_data_workspace
Revises: 0004_retry_policy
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_data_workspace"
down_revision = "0004_retry_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingestions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('namespace_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=True),
    sa.Column('token_id', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('source', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('processed_bytes', sa.BigInteger(), nullable=False),
    sa.Column('expected_total_bytes', sa.BigInteger(), nullable=True),
    sa.Column('processed_rows', sa.BigInteger(), nullable=False),
    sa.Column('failed_rows', sa.BigInteger(), nullable=False),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('seen', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.String(length=40), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('snapshot', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingestions')),
    sa.UniqueConstraint('workspace_id', 'idempotency_key', name=op.f('uq_ingestions_workspace_id_idempotency_key'))
    )
    op.create_index('ix_ingestions_claim', 'ingestions', ['status', 'created_at'], unique=False)
    op.create_index('ix_ingestions_dataset', 'ingestions', ['dataset_id', 'id'], unique=False)
    op.create_table('namespaces',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('owner_id', sa.String(length=40), nullable=False),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('field_definitions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_namespaces')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_namespaces_workspace_id_name'))
    )
    op.create_table('retired_blobs',
    sa.Column('key', sa.String(length=1200), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_retired_blobs'))
    )
    op.create_table('uploads',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('token_id', sa.String(length=40), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('part_size', sa.BigInteger(), nullable=False),
    sa.Column('part_count', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('target', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('ingestion_id', sa.String(length=40), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
    op.create_index('ix_uploads_status_expiry', 'uploads', ['status', 'expires_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('failed_logins', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_index('uq_users_live_name', 'users', ['workspace_id', 'username'], unique=True, sqlite_where=sa.text('deleted_at IS NULL'), postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_table('datasets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('namespace_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('field_definitions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('columns', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('sort_order', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('manifest_version', sa.Integer(), nullable=False),
    sa.Column('manifest_key', sa.String(length=300), nullable=True),
    sa.Column('next_row_id', sa.BigInteger(), nullable=False),
    sa.Column('stats_version', sa.Integer(), nullable=True),
    sa.Column('row_count', sa.BigInteger(), nullable=False),
    sa.Column('byte_count', sa.BigInteger(), nullable=False),
    sa.Column('stats', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('last_ingestion_id', sa.String(length=40), nullable=True),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['namespace_id'], ['namespaces.id'], name=op.f('fk_datasets_namespace_id_namespaces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('namespace_id', 'name', name=op.f('uq_datasets_namespace_id_name'))
    )
    op.create_table('namespace_members',
    sa.Column('namespace_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('access', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['namespace_id'], ['namespaces.id'], name=op.f('fk_namespace_members_namespace_id_namespaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('namespace_id', 'user_id', name=op.f('pk_namespace_members'))
    )
    op.create_table('upload_parts',
    sa.Column('upload_id', sa.String(length=40), nullable=False),
    sa.Column('part_number', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('etag', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_upload_parts_upload_id_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'part_number', name=op.f('pk_upload_parts'))
    )
    with op.batch_alter_table('tokens') as batch:
        batch.add_column(sa.Column('user_id', sa.String(length=40), nullable=True))
    with op.batch_alter_table('usage_events') as batch:
        batch.add_column(sa.Column('user_id', sa.String(length=40), nullable=True))
    _tool_restrictions_by_id()


JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
tokens = sa.table("tokens", sa.column("id", sa.String), sa.column("restrictions", JSON))


def _tool_restrictions_by_id() -> None:
    """Token restrictions named tools; they now hold tool ids, so that a tool deleted and
    another made under its name never inherits the token's access. Names of tools that no
    longer exist keep matching nothing (an id that never exists)."""
    conn = op.get_bind()
    live = {(r.workspace_id, r.name): r.id for r in conn.execute(sa.text(
        "SELECT id, workspace_id, name FROM tools WHERE deleted_at IS NULL"))}
    for row in conn.execute(sa.text("SELECT id, workspace_id, restrictions FROM tokens")).all():
        raw = row.restrictions
        stored = json.loads(raw) if isinstance(raw, str) else (raw or {})
        names = stored.get("tools") or []
        if not names and "namespaces" not in stored:
            continue
        ids = sorted({live.get((row.workspace_id, n), f"gone:{n}") for n in names})
        new = {"tools": ids, "grants": []}
        conn.execute(tokens.update().where(tokens.c.id == row.id).values(restrictions=new))


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("user_id")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("user_id")
    for table in ("retired_blobs", "upload_parts", "uploads", "ingestions", "datasets", "namespace_members",
                  "namespaces", "users"):
        op.drop_table(table)

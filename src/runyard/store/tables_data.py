"""Data workspace tables: users, namespaces and their members, datasets, ingestions, uploads.

A dataset's rows live in the blob store as Parquet parts listed by a manifest; its row here
holds the catalog and the pointer to the current manifest (``manifest_version``), which every
write moves by compare-and-set.
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

users = sa.Table(
    "users", metadata,
    id_column(), workspace_column(),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # caps the roles of the user's tokens
    sa.Column("display_name", sa.String(200)),
    sa.Column("email", sa.String(320)),
    sa.Column("password_hash", sa.String(200)),  # argon2id; NULL: cannot sign in with a password
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0, server_default=sa.text("0")),
    sa.Column("locked_until", TS),  # login throttling after repeated failures
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS),
)
sa.Index("uq_users_live_name", users.c.workspace_id, users.c.username, unique=True,
         sqlite_where=users.c.deleted_at.is_(None), postgresql_where=users.c.deleted_at.is_(None))

namespaces = sa.Table(
    "namespaces", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("owner_id", sa.String(40), nullable=False),
    sa.Column("private", sa.Boolean, nullable=False, default=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("field_definitions", JSON, nullable=False, default=dict),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

namespace_members = sa.Table(
    "namespace_members", metadata,
    sa.Column("namespace_id", sa.String(40), sa.ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.String(40), primary_key=True),
    sa.Column("access", sa.String(10), nullable=False),  # read | write
    sa.Column("created_at", TS, nullable=False),
)

datasets = sa.Table(
    "datasets", metadata,
    id_column(), workspace_column(),
    sa.Column("namespace_id", sa.String(40), sa.ForeignKey("namespaces.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("field_definitions", JSON, nullable=False, default=dict),
    sa.Column("columns", JSON, nullable=False, default=list),
    sa.Column("sort_order", JSON),
    # The current snapshot: the manifest blob ``manifest_key`` (None: empty, never written),
    # moved by compare-and-set on ``manifest_version``.
    sa.Column("manifest_version", sa.Integer, nullable=False, default=0),
    sa.Column("manifest_key", sa.String(300)),
    # Row ids are handed out in blocks from here (a row's ``_id``: unique, ordered by ingestion).
    sa.Column("next_row_id", sa.BigInteger, nullable=False, default=1),
    sa.Column("stats_version", sa.Integer),  # the manifest version ``stats`` describes
    sa.Column("row_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("byte_count", sa.BigInteger, nullable=False, default=0),
    sa.Column("stats", JSON, nullable=False, default=dict),
    sa.Column("last_ingestion_id", sa.String(40)),
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("namespace_id", "name"),
)

ingestions = sa.Table(
    "ingestions", metadata,
    id_column(), workspace_column(),
    sa.Column("dataset_id", sa.String(40), nullable=False),
    sa.Column("namespace_id", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(40)),
    sa.Column("token_id", sa.String(40)),
    sa.Column("kind", sa.String(10), nullable=False),  # rows | file | upload
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("status_message", sa.Text),
    sa.Column("source", JSON, nullable=False, default=dict),  # blob key, filename, format, options
    sa.Column("processed_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("expected_total_bytes", sa.BigInteger),
    sa.Column("processed_rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("failed_rows", sa.BigInteger, nullable=False, default=0),
    sa.Column("attributes", JSON, nullable=False, default=dict),
    sa.Column("result", JSON),  # a rows ingestion's answer, replayed for its Idempotency-Key
    sa.Column("seen", sa.Boolean, nullable=False, default=False),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("max_attempts", sa.Integer, nullable=False, default=3),
    sa.Column("worker_id", sa.String(40)),
    sa.Column("lease_expires_at", TS),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("snapshot", sa.Integer),  # the manifest version it committed
    sa.Column("created_at", TS, nullable=False),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.UniqueConstraint("workspace_id", "idempotency_key"),
)
sa.Index("ix_ingestions_claim", ingestions.c.status, ingestions.c.created_at)
sa.Index("ix_ingestions_dataset", ingestions.c.dataset_id, ingestions.c.id)

uploads = sa.Table(
    "uploads", metadata,
    id_column(), workspace_column(),
    sa.Column("user_id", sa.String(40), nullable=False),
    sa.Column("token_id", sa.String(40)),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("part_size", sa.BigInteger, nullable=False),
    sa.Column("part_count", sa.Integer, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),  # the upload key is shown once
    sa.Column("status", sa.String(12), nullable=False),  # open | completed | aborted | expired
    sa.Column("target", JSON),  # namespace/dataset chosen at prepare time (compat), if any
    sa.Column("ingestion_id", sa.String(40)),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("finished_at", TS),
)
sa.Index("ix_uploads_status_expiry", uploads.c.status, uploads.c.expires_at)

upload_parts = sa.Table(
    "upload_parts", metadata,
    sa.Column("upload_id", sa.String(40), sa.ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("part_number", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

# Replaced Parquet parts and manifests, deleted once no query or cursor can still read them.
retired_blobs = sa.Table(
    "retired_blobs", metadata,
    sa.Column("key", sa.String(1200), primary_key=True),
    sa.Column("retired_at", TS, nullable=False),
)

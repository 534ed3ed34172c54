"""Workspace files: named files a workspace keeps (``/workspace/files``), read by runs that declare them.

A file's bytes are one blob (``blob_key``); replacing a file writes a new blob and moves
the row to it, so a download or run reading the old bytes is never handed a half-written
file. The storage quota sums ``size`` here with the other stored bytes (services.storage).
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import TS, id_column, metadata, workspace_column

workspace_files = sa.Table(
    "workspace_files", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("blob_key", sa.String(300), nullable=False),
    sa.Column("created_by", sa.String(40)),  # the user who first uploaded it
    sa.Column("updated_by", sa.String(40)),  # the user who last replaced it
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

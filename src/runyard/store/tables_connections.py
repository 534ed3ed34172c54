"""Connections (issue 18): the external systems runyard and its tools reach — databases
(postgres, mysql), HTTP/OpenAPI and OData services, S3 buckets and MCP servers.

``config`` holds the settings without any secret value: a secret part is stored as
``{"secret": "NAME"}``, a reference to a runyard secret (``owned_secrets`` lists the ones
the connection created from a value given once, deleted with it). The last check's
outcome is ``status_state`` (ok | failed | unknown), ``checked_at``, ``latency_ms``
(successes only) and ``status_error``. ``mcp_tools``: the tools an ``mcp`` connection's last
successful verify listed (name, description, input schema), what ``GET /mcp-tools`` offers."""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

connections = sa.Table(
    "connections", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("config", JSON, nullable=False),
    sa.Column("owned_secrets", JSON, nullable=False),
    sa.Column("status_state", sa.String(10), nullable=False),
    sa.Column("checked_at", TS),
    sa.Column("latency_ms", sa.Float),
    sa.Column("status_error", sa.Text),
    sa.Column("mcp_tools", JSON),
    sa.Column("created_by", sa.String(40)),
    sa.Column("updated_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

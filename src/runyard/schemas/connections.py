"""Connections: named settings for an external system. Secret parts are write-only: in
a body they are a value (stored as a secret) or ``{"secret": "NAME"}``; in a view they are
``{"secret": "NAME", "set": true|false}``, never a value."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

ConnectionType = Literal["postgres", "mysql", "http", "openapi", "odata", "s3", "mcp"]


class ConnectionCreate(Request):
    name: str = Field(min_length=1, max_length=64, description="lower-case slug; unique in the workspace")
    type: ConnectionType
    config: dict[str, Any] = Field(description="the type's settings (docs/connections.md); secret parts as a value "
                                               'or {"secret": "NAME"}')


class ConnectionUpdate(Request):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    config: dict[str, Any] | None = Field(default=None, description="merged over the stored config key by key "
                                                                    "(null removes a key)")


class ConnectionStatus(BaseModel):
    state: Literal["ok", "failed", "unknown"]
    checked_at: str | None = None
    latency_ms: float | None = Field(default=None, description="the last successful check's duration")
    error: str | None = None


class ConnectionView(BaseModel):
    object: Literal["connection"] = "connection"
    id: str
    name: str
    type: str
    config: dict[str, Any] = Field(description='secret parts as {"secret": "NAME", "set": bool}')
    status: ConnectionStatus
    created_by: str | None = None
    updated_by: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class ConnectionMetadata(BaseModel):
    object: Literal["connection_metadata"] = "connection_metadata"
    connection: str
    name: str
    type: str
    metadata: dict[str, Any] = Field(description="by type: schemas/tables/columns (databases), operations and "
                                                 "schemas (openapi), entity sets and types (odata), objects and "
                                                 "prefixes (s3); truncated when capped")

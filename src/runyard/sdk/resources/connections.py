"""``client.connections``: external systems' settings (admins manage them), checked for
real and read for their metadata. Secret parts go in as values or ``{"secret": "NAME"}``
and come back only as ``{"secret": "NAME", "set": True}``."""

from __future__ import annotations

from typing import Any

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Connection, ConnectionMetadata
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Connections", "AsyncConnections"]


class ConnectionsAPI:
    """``client.connections``, written once for :class:`Connections` and :class:`AsyncConnections`."""

    @endpoint
    def create(self, name: str, type: str, config: dict[str, Any], *, timeout: Timeout = None) -> Plan[Connection]:
        """Add a connection (admins): ``type`` is postgres, mysql, http, openapi, odata, s3 or
        mcp; ``config`` its settings (docs/connections.md)."""
        opts = RequestOptions("POST", "/connections", json={"name": name, "type": type, "config": config},
                              timeout=timeout)
        return Connection.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, type: str | None = None, limit: int | None = None,
             timeout: Timeout = None) -> Listing[Connection]:
        """The workspace's connections (secret parts as references only)."""
        return Listing(Connection, lambda cursor: RequestOptions(
            "GET", "/connections", params={"type": type, "limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, connection: str, *, timeout: Timeout = None) -> Plan[Connection]:
        """One connection, by name or id."""
        opts = RequestOptions("GET", f"/connections/{seg(connection)}", timeout=timeout)
        return Connection.model_validate((yield Send(opts)).json())

    @endpoint
    def update(self, connection: str, *, name: str | None = None, config: dict[str, Any] | None = None,
               timeout: Timeout = None) -> Plan[Connection]:
        """Rename, or change settings: ``config`` is merged over the stored one key by key
        (a key set to None is removed)."""
        body = compact(name=name)
        if config is not None:
            body["config"] = config
        opts = RequestOptions("PATCH", f"/connections/{seg(connection)}", json=body, timeout=timeout)
        return Connection.model_validate((yield Send(opts)).json())

    @endpoint
    def delete(self, connection: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a connection and the secrets it created."""
        yield Send(RequestOptions("DELETE", f"/connections/{seg(connection)}", timeout=timeout))

    @endpoint
    def verify(self, connection: str, *, timeout: Timeout = None) -> Plan[Connection]:
        """Check the connection for real; its ``status`` says how it went (a failure is not raised)."""
        opts = RequestOptions("POST", f"/connections/{seg(connection)}/verify", idempotency_key="", timeout=timeout)
        return Connection.model_validate((yield Send(opts)).json())

    @endpoint
    def metadata(self, connection: str, *, timeout: Timeout = None) -> Plan[ConnectionMetadata]:
        """What the system holds: tables and columns, operations, entity sets, objects."""
        opts = RequestOptions("GET", f"/connections/{seg(connection)}/metadata", timeout=timeout)
        return ConnectionMetadata.model_validate((yield Send(opts)).json())


class Connections(ConnectionsAPI, SyncResource):
    """``client.connections``: external systems' settings, checks and metadata."""


class AsyncConnections(ConnectionsAPI, AsyncResource):
    """``client.connections`` of :class:`~runyard.AsyncClient` (coroutines)."""

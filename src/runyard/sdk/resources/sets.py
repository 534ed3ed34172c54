"""``client.sets``: saved sets — named, versioned rows."""

from __future__ import annotations

from typing import Any

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import RunyardModel
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Sets", "AsyncSets", "SavedSet"]


class SavedSet(RunyardModel):
    id: str
    name: str
    version: int
    latest_version: int
    row_count: int
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]] | None = None


class SetsAPI:
    """``client.sets``, written once for :class:`Sets` and :class:`AsyncSets`."""

    @endpoint
    def save(self, name: str, rows: list[dict[str, Any]], *, timeout: Timeout = None) -> Plan[SavedSet]:
        """Save rows under ``name``; an existing name gets a new version."""
        opts = RequestOptions("POST", "/sets", json={"name": name, "rows": rows}, timeout=timeout)
        return SavedSet.model_validate((yield Send(opts)).json())

    @endpoint
    def get(self, name: str, *, version: int | None = None, offset: int | None = None, limit: int | None = None,
            timeout: Timeout = None) -> Plan[SavedSet]:
        """A saved set with its rows (``offset``/``limit`` for a slice); the latest
        version unless ``version``."""
        params = compact(version=version, offset=offset, limit=limit)
        opts = RequestOptions("GET", f"/sets/{seg(name)}", params=params, timeout=timeout)
        return SavedSet.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[SavedSet]:
        """The workspace's saved sets (without their rows)."""
        return Listing(SavedSet, lambda cursor: RequestOptions(
            "GET", "/sets", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def delete(self, name: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a saved set and all its versions."""
        yield Send(RequestOptions("DELETE", f"/sets/{seg(name)}", timeout=timeout))


class Sets(SetsAPI, SyncResource):
    """``client.sets``: saved sets — named, versioned rows."""


class AsyncSets(SetsAPI, AsyncResource):
    """``client.sets`` of :class:`~runyard.AsyncClient` (coroutines)."""

"""``client.folders``: folders to file workflows in."""

from __future__ import annotations

from typing import Any

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Folder
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Folders", "AsyncFolders"]


def _id(folder: str | Folder) -> str:
    return folder.id if isinstance(folder, Folder) else str(folder)


class FoldersAPI:
    """``client.folders``, written once for :class:`Folders` and :class:`AsyncFolders`."""

    @endpoint
    def create(self, name: str, *, description: str | None = None, timeout: Timeout = None) -> Plan[Folder]:
        """A new folder (a name already taken is a :class:`~runyard.ConflictError`)."""
        return Folder.model_validate((yield Send(RequestOptions(
            "POST", "/folders", json=compact(name=name, description=description), timeout=timeout))).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Folder]:
        """Every folder."""
        return Listing(Folder, lambda cursor: RequestOptions(
            "GET", "/folders", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, folder: str | Folder, *, timeout: Timeout = None) -> Plan[Folder]:
        return Folder.model_validate((yield Send(RequestOptions(
            "GET", f"/folders/{seg(_id(folder))}", timeout=timeout))).json())

    @endpoint
    def update(self, folder: str | Folder, *, name: str | None = None, description: str | None = None,
               timeout: Timeout = None) -> Plan[Folder]:
        """Rename it or change its description."""
        body: dict[str, Any] = compact(name=name, description=description)
        return Folder.model_validate((yield Send(RequestOptions(
            "PATCH", f"/folders/{seg(_id(folder))}", json=body, timeout=timeout))).json())

    @endpoint
    def delete(self, folder: str | Folder, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a folder (a :class:`~runyard.ConflictError` while workflows are in it)."""
        yield Send(RequestOptions("DELETE", f"/folders/{seg(_id(folder))}", timeout=timeout))


class Folders(FoldersAPI, SyncResource):
    """``client.folders``: folders to file workflows in."""


class AsyncFolders(FoldersAPI, AsyncResource):
    """``client.folders`` of :class:`~runyard.AsyncClient` (coroutines)."""

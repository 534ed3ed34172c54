"""``client.sets``: saved sets — named, versioned rows."""

from __future__ import annotations

from typing import Any

from .._base import RequestOptions, Timeout
from ..models import RunyardModel
from ..pagination import AsyncPaginator, SyncCursorPage
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


class Sets(SyncResource):
    def save(self, name: str, rows: list[dict[str, Any]], *, timeout: Timeout = None) -> SavedSet:
        """Save rows under ``name``; an existing name gets a new version."""
        opts = RequestOptions("POST", "/sets", json={"name": name, "rows": rows}, timeout=timeout)
        return SavedSet.model_validate(self._client.request(opts).json())

    def get(self, name: str, *, version: int | None = None, offset: int | None = None, limit: int | None = None,
            timeout: Timeout = None) -> SavedSet:
        params = compact(version=version, offset=offset, limit=limit)
        opts = RequestOptions("GET", f"/sets/{seg(name)}", params=params, timeout=timeout)
        return SavedSet.model_validate(self._client.request(opts).json())

    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> SyncCursorPage[SavedSet]:
        def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/sets", params={"limit": limit, "cursor": cursor}, timeout=timeout)
            return self._client.request(opts).json()

        return SyncCursorPage(fetch(None), SavedSet, fetch)

    def delete(self, name: str, *, timeout: Timeout = None) -> None:
        self._client.request(RequestOptions("DELETE", f"/sets/{seg(name)}", timeout=timeout))


class AsyncSets(AsyncResource):
    async def save(self, name: str, rows: list[dict[str, Any]], *, timeout: Timeout = None) -> SavedSet:
        opts = RequestOptions("POST", "/sets", json={"name": name, "rows": rows}, timeout=timeout)
        return SavedSet.model_validate((await self._client.request(opts)).json())

    async def get(self, name: str, *, version: int | None = None, timeout: Timeout = None) -> SavedSet:
        opts = RequestOptions("GET", f"/sets/{seg(name)}", params=compact(version=version), timeout=timeout)
        return SavedSet.model_validate((await self._client.request(opts)).json())

    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> AsyncPaginator[SavedSet]:
        async def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/sets", params={"limit": limit, "cursor": cursor}, timeout=timeout)
            return (await self._client.request(opts)).json()

        return AsyncPaginator(lambda: fetch(None), SavedSet, fetch)

    async def delete(self, name: str, *, timeout: Timeout = None) -> None:
        await self._client.request(RequestOptions("DELETE", f"/sets/{seg(name)}", timeout=timeout))

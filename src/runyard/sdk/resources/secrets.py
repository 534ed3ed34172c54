"""``client.secrets``: values go in, only masked metadata comes back out."""

from __future__ import annotations

from typing import Any

from .._base import RequestOptions, Timeout
from ..models import Secret
from ..pagination import AsyncPaginator, SyncCursorPage
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Secrets", "AsyncSecrets"]


def _set_request(
    name: str, value: str, display_name: str | None, description: str | None, category: str | None, force: bool,
    timeout: Timeout,
) -> RequestOptions:
    body = compact(value=value, display_name=display_name, description=description, category=category)
    # PUT is idempotent by nature: no idempotency key needed for its retries.
    return RequestOptions(
        "PUT", f"/secrets/{seg(name)}", params={"force": True} if force else None, json=body, timeout=timeout
    )


class Secrets(SyncResource):
    def set(
        self,
        name: str,
        value: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        category: str | None = None,
        force: bool = False,
        timeout: Timeout = None,
    ) -> Secret:
        """Store a secret. An existing name raises :class:`~runyard.ConflictError` unless ``force``."""
        opts = _set_request(name, value, display_name, description, category, force, timeout)
        return Secret.model_validate(self._client.request(opts).json())

    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> SyncCursorPage[Secret]:
        def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/secrets", params={"limit": limit, "cursor": cursor}, timeout=timeout)
            return self._client.request(opts).json()

        return SyncCursorPage(fetch(None), Secret, fetch)

    def delete(self, name: str, *, timeout: Timeout = None) -> None:
        self._client.request(RequestOptions("DELETE", f"/secrets/{seg(name)}", timeout=timeout))


class AsyncSecrets(AsyncResource):
    async def set(
        self,
        name: str,
        value: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        category: str | None = None,
        force: bool = False,
        timeout: Timeout = None,
    ) -> Secret:
        opts = _set_request(name, value, display_name, description, category, force, timeout)
        return Secret.model_validate((await self._client.request(opts)).json())

    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> AsyncPaginator[Secret]:
        async def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/secrets", params={"limit": limit, "cursor": cursor}, timeout=timeout)
            return (await self._client.request(opts)).json()

        return AsyncPaginator(lambda: fetch(None), Secret, fetch)

    async def delete(self, name: str, *, timeout: Timeout = None) -> None:
        await self._client.request(RequestOptions("DELETE", f"/secrets/{seg(name)}", timeout=timeout))

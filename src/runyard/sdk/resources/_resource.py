"""Base classes that give resources their client and executor, and a few body/URL helpers.

A resource's endpoints are written once, as plans, in a class both the sync and the
async resource derive from (see :mod:`runyard.sdk._endpoint`); these two bases only say
how a plan is carried out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from .._endpoint import Listing, Plan, iterate_async, iterate_sync, page_async, page_sync, run_async, run_sync
from ..models import RunyardModel
from ..pagination import AsyncPaginator, SyncCursorPage

if TYPE_CHECKING:
    from .._base import AsyncAPIClient, SyncAPIClient

T = TypeVar("T")
M = TypeVar("M", bound=RunyardModel)


def seg(value: str) -> str:
    """One URL path segment: ids and names are quoted so '/' or '?' cannot escape."""
    return quote(str(value), safe="")


def compact(**fields: Any) -> dict[str, Any]:
    """A request body without the fields the caller left as ``None`` (so the server
    applies its own defaults, and a PATCH touches only what was given)."""
    return {k: v for k, v in fields.items() if v is not None}


class SyncResource:
    """Carries plans out with blocking calls."""

    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client

    def _run(self, plan: Plan[T]) -> T:
        return run_sync(self._client, plan)

    def _page(self, spec: Listing[M]) -> SyncCursorPage[M]:
        return page_sync(self._client, spec)

    def _iterate(self, plan: Plan[Any]) -> Iterator[Any]:
        return iterate_sync(self._client, plan)


class AsyncResource:
    """Carries plans out with awaits: methods return coroutines."""

    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client

    def _run(self, plan: Plan[T]) -> Coroutine[Any, Any, T]:
        return run_async(self._client, plan)

    def _page(self, spec: Listing[M]) -> AsyncPaginator[M]:
        return page_async(self._client, spec)

    def _iterate(self, plan: Plan[Any]) -> AsyncIterator[Any]:
        return iterate_async(self._client, plan)

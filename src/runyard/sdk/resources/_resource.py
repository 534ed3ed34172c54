"""Base classes that give resources their client and a few body/URL helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .._base import AsyncAPIClient, SyncAPIClient


def seg(value: str) -> str:
    """One URL path segment: ids and names are quoted so '/' or '?' cannot escape."""
    return quote(str(value), safe="")


def compact(**fields: Any) -> dict[str, Any]:
    """A request body without the fields the caller left as ``None`` (so the server
    applies its own defaults, and a PATCH touches only what was given)."""
    return {k: v for k, v in fields.items() if v is not None}


class SyncResource:
    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client


class AsyncResource:
    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client

"""``client.usage``: metered events (runs, ingestion, queries, storage) and their daily sums."""

from __future__ import annotations

import builtins
from datetime import date, datetime

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import UsageDay, UsageEvent
from ._resource import AsyncResource, SyncResource

__all__ = ["Usage", "AsyncUsage"]

When = datetime | date | str | None


class UsageAPI:
    """``client.usage``, written once for :class:`Usage` and :class:`AsyncUsage`."""

    @listing
    def events(
        self, *, from_: When = None, to: When = None, kind: str | None = None, limit: int | None = None,
        timeout: Timeout = None,
    ) -> Listing[UsageEvent]:
        """Usage events between ``from_`` and ``to`` (times or RFC 3339 text), of one
        ``kind`` if given; iterate the page for every event across pages."""
        params = {"from": from_, "to": to, "kind": kind, "limit": limit}
        return Listing(UsageEvent, lambda cursor: RequestOptions(
            "GET", "/usage", params={**params, "cursor": cursor}, timeout=timeout))

    @endpoint
    def daily(
        self, *, from_: When = None, to: When = None, timezone: str | None = None, timeout: Timeout = None,
    ) -> Plan[builtins.list[UsageDay]]:
        """Usage summed per day and kind (days in ``timezone``, an IANA name; default UTC)."""
        opts = RequestOptions("GET", "/usage/daily", params={"from": from_, "to": to, "timezone": timezone},
                              timeout=timeout)
        body = (yield Send(opts)).json()
        items = body.get("items", []) if isinstance(body, dict) else body
        return [UsageDay.model_validate(item) for item in items]


class Usage(UsageAPI, SyncResource):
    """``client.usage``: what the workspace used."""


class AsyncUsage(UsageAPI, AsyncResource):
    """``client.usage`` of :class:`~runyard.AsyncClient` (coroutines)."""

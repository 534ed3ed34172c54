"""Usage: metered events (runs, synthetic rows, ingestion, queries) and daily totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from runyard.services.access import Permission, Principal
from runyard.services.errors import ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.store.db import Database
from runyard.store.tables import usage_events
from runyard.store.tables_data import datasets
from runyard.timeutil import as_utc, rfc3339, utcnow

SEE_USAGE = Permission("viewer", "see usage")
# Kinds counted by event as well as summed: one run_seconds event per run, and so on.
COUNTED = {"run_seconds": "runs", "query_seconds": "queries"}


class UsageRecorder:
    """Appends usage events (each service meters its own work through one of these)."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def record(self, workspace_id: str, kind: str, quantity: float, *, ref_id: str | None = None,
               user_id: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(usage_events.insert().values(workspace_id=workspace_id, kind=kind, quantity=quantity,
                                                      ref_id=ref_id, user_id=user_id, created_at=self.clock()))


def _event_view(row: Any) -> dict[str, Any]:
    return {"object": "usage_event", "id": row.id, "kind": row.kind, "quantity": row.quantity, "ref_id": row.ref_id,
            "user_id": row.user_id, "created_at": rfc3339(row.created_at)}


class UsageService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    def _window(self, principal: Principal, start: datetime | None, end: datetime | None) -> Any:
        SEE_USAGE.check(principal)
        where = [usage_events.c.workspace_id == principal.workspace_id]
        if start is not None:
            where.append(usage_events.c.created_at >= as_utc(start))
        if end is not None:
            where.append(usage_events.c.created_at < as_utc(end))
        if principal.role != "admin" or principal.restricted:  # the workspace's: unrestricted admins only
            where.append(usage_events.c.user_id == principal.user_id)
        return sa.and_(*where)

    def events(self, principal: Principal, *, start: datetime | None = None, end: datetime | None = None,
               kind: str | None = None, cursor: str | None = None, limit: int = 100) -> Page:
        """Usage events, newest first."""
        window = self._window(principal, start, end)
        query = sa.select(usage_events).where(window)
        if kind:
            query = query.where(usage_events.c.kind == kind)
        with self.db.read() as conn:
            rows, nxt, _ = paginate(conn, query, sort_col=usage_events.c.id, id_col=usage_events.c.id,
                                    descending=True, cursor=cursor, limit=limit)
        return Page([_event_view(r) for r in rows], nxt, None)

    def daily(self, principal: Principal, *, start: datetime | None = None, end: datetime | None = None,
              timezone: str = "UTC") -> list[dict[str, Any]]:
        """Totals per local day (in ``timezone``) and kind, plus storage bytes held now."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(f"unknown time zone {timezone!r}", code="invalid_timezone",
                                   details={"field": "timezone"}) from None
        now = self.clock()
        end = as_utc(end) if end is not None else now
        start = as_utc(start) if start is not None else end - timedelta(days=30)  # type: ignore[operator]
        totals: dict[tuple[str, str], float] = defaultdict(float)
        window = self._window(principal, start, end)
        with self.db.read() as conn:
            result = conn.execution_options(yield_per=5000).execute(
                sa.select(usage_events.c.kind, usage_events.c.quantity, usage_events.c.created_at).where(window))
            for kind, quantity, created in result:
                day = as_utc(created).astimezone(zone).date().isoformat()  # type: ignore[union-attr]
                totals[(day, kind)] += quantity
                if kind in COUNTED:
                    totals[(day, COUNTED[kind])] += 1
            storage = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(datasets.c.byte_count), 0)).where(
                datasets.c.workspace_id == principal.workspace_id)).scalar_one()
        if start <= now <= end:  # type: ignore[operator]
            totals[(now.astimezone(zone).date().isoformat(), "storage_bytes")] = float(storage)
        return [{"day": day, "kind": kind, "quantity": q} for (day, kind), q in sorted(totals.items())]

"""/usage — metered events and daily totals (services.usage)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.datasets import UsageDay, UsageEvent
from runyard.services.errors import ValidationFailed

router = APIRouter(tags=["usage"], responses=error_responses(*AUTHENTICATED))
_TIME = {"format": "date-time"}


def parse_time(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 time (a number is not one: pydantic would take it as a Unix time)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{field} must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z",
                               details={"field": field}) from None


@router.get("/usage", response_model=Page[UsageEvent])
async def usage_events(platform: PlatformDep, principal: PrincipalDep,
                       from_: str | None = Query(None, alias="from", json_schema_extra=_TIME),
                       to: str | None = Query(None, json_schema_extra=_TIME),
                       kind: str | None = None, cursor: str | None = None, limit: int = Query(100)) -> dict:
    return await paged(platform.usage.events, principal, start=parse_time(from_, "from"), end=parse_time(to, "to"),
                       kind=kind, cursor=cursor, limit=limit)


@router.get("/usage/daily", response_model=Page[UsageDay])
async def usage_daily(platform: PlatformDep, principal: PrincipalDep,
                      from_: str | None = Query(None, alias="from", json_schema_extra=_TIME),
                      to: str | None = Query(None, json_schema_extra=_TIME), timezone: str = "UTC") -> dict:
    items = await in_thread(platform.usage.daily, principal, start=parse_time(from_, "from"),
                            end=parse_time(to, "to"), timezone=timezone)
    return {"object": "list", "items": items, "next_cursor": None, "total": len(items)}

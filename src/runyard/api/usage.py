"""/usage — metered events and daily totals (services.usage)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.datasets import UsageDay, UsageEvent

router = APIRouter(tags=["usage"], responses=error_responses(*AUTHENTICATED))


@router.get("/usage", response_model=Page[UsageEvent])
async def usage_events(platform: PlatformDep, principal: PrincipalDep,
                       from_: datetime | None = Query(None, alias="from"), to: datetime | None = None,
                       kind: str | None = None, cursor: str | None = None, limit: int = Query(100)) -> dict:
    return await paged(platform.usage.events, principal, start=from_, end=to, kind=kind, cursor=cursor, limit=limit)


@router.get("/usage/daily", response_model=Page[UsageDay])
async def usage_daily(platform: PlatformDep, principal: PrincipalDep,
                      from_: datetime | None = Query(None, alias="from"), to: datetime | None = None,
                      timezone: str = "UTC") -> dict:
    items = await in_thread(platform.usage.daily, principal, start=from_, end=to, timezone=timezone)
    return {"object": "list", "items": items, "next_cursor": None, "total": len(items)}

"""/ui: the home page — recent runs, failures in the last 24 hours, runs per hour, usage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from runyard.api.offload import in_thread
from runyard.services.access import Principal
from runyard.timeutil import utcnow
from runyard.ui.charts import bar_chart
from runyard.ui.core import SessionDep, UiRoute, platform_of, render
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
FAILED = ["failed", "timed_out"]
HOURS = 24


def _overview(platform: Platform, principal: Principal) -> dict[str, Any]:
    now = utcnow()
    day_ago = now - timedelta(hours=HOURS)
    runs = platform.runs
    recent = runs.list(principal, limit=10).items
    failures = runs.list(principal, statuses=FAILED, created_after=day_ago, limit=10, include_total=True)
    hour0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    per_hour = []
    for i in range(HOURS):  # one count per hour: the services' filters, no query of our own
        start = hour0 + timedelta(hours=i)
        page = runs.list(principal, created_after=start, created_before=start + timedelta(hours=1), limit=1,
                         include_total=True)
        per_hour.append((start.strftime("%H:00"), page.total or 0))
    usage = platform.usage.daily(principal, start=now - timedelta(days=7))
    totals: dict[str, float] = {}
    for row in usage:
        totals[row["kind"]] = totals.get(row["kind"], 0.0) + row["quantity"]
    return {"recent": recent, "failures": failures.items, "failure_count": failures.total or 0,
            "chart": bar_chart(per_hour), "usage": sorted(totals.items())}


@router.get("", response_class=HTMLResponse)
async def home(request: Request, session: SessionDep) -> HTMLResponse:
    overview = await in_thread(_overview, platform_of(request), session.principal)
    return render(request, session, "home/index.html", **overview)

"""Any other path under /ui: the not-found page (included last, after every page group)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from runyard.services.errors import NotFound
from runyard.ui.core import UiRoute

router = APIRouter(route_class=UiRoute, include_in_schema=False)


@router.api_route("/{rest:path}", methods=["GET", "POST"], response_class=HTMLResponse)
async def not_found(request: Request, rest: str) -> HTMLResponse:
    raise NotFound("no such page", code="not_found")

"""Request dependencies: the platform, the authenticated principal, common parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from runyard.platform import Platform
from runyard.services.access import Principal
from runyard.services.errors import RateLimited
from runyard.services.pagination import Page


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def get_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    platform: Platform = request.app.state.platform
    key = key.strip() if scheme.lower() == "bearer" else ""
    # The common case is a key seen in the last seconds: no thread hop for it.
    principal = (platform.tokens.authenticate_cached(key) if key else None) or \
        await run_in_threadpool(platform.tokens.authenticate, key or None)
    request.state.principal = principal
    limiter = request.app.state.rate_limiter
    if limiter is not None:
        try:
            request.state.quota = limiter.hit(principal.workspace_id)
        except RateLimited as exc:
            request.state.quota = exc.quota  # type: ignore[attr-defined]
            raise
    return principal


PlatformDep = Annotated[Platform, Depends(get_platform)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def page_body(page: Page) -> dict:
    return {"object": "list", "items": page.items, "next_cursor": page.next_cursor, "total": page.total}

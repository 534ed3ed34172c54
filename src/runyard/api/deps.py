"""Request dependencies: the platform, the authenticated principal, common parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from runyard.api.offload import in_thread
from runyard.services.access import Principal
from runyard.services.errors import RateLimited
from runyard.services.pagination import Page
from runyard.services.ratelimit import RateLimiter
from runyard.wiring import Platform


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def authenticate(platform: Platform, limiter: RateLimiter | None, authorization: str,
                       state: dict[str, Any]) -> Principal:
    """The principal of an ``Authorization: Bearer`` header, counted against the rate limit.

    ``state`` is the request's scope state: the principal and quota are recorded there
    (the request-id middleware turns the quota into X-RateLimit-* headers).
    """
    scheme, _, key = authorization.partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    # The common case is a key seen in the last seconds: no thread hop for it.
    principal = (platform.tokens.authenticate_cached(key) if key else None) or \
        await in_thread(platform.tokens.authenticate, key or None)
    state["principal"] = principal
    if limiter is not None:
        try:
            state["quota"] = limiter.hit(principal.workspace_id)
        except RateLimited as exc:
            state["quota"] = exc.quota  # type: ignore[attr-defined]
            raise
    return principal


async def get_principal(request: Request) -> Principal:
    state = request.scope.setdefault("state", {})
    if (principal := state.get("principal")) is not None:
        return principal  # authenticated before its body was read (api.guard)
    return await authenticate(request.app.state.platform, request.app.state.rate_limiter,
                              request.headers.get("authorization", ""), state)


PlatformDep = Annotated[Platform, Depends(get_platform)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def paged(call: Callable[..., Page], *args: Any, **kwargs: Any) -> dict:
    """A service's list operation, run off the event loop, as the API's list body."""
    return page_body(await in_thread(call, *args, **kwargs))


def page_body(page: Page) -> dict:
    return {"object": "list", "items": page.items, "next_cursor": page.next_cursor, "total": page.total}

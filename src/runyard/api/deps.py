"""Request dependencies: the platform, the authenticated principal, common parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from runyard.api.offload import in_thread
from runyard.compat.deeporigin import key_of
from runyard.services.access import Principal
from runyard.services.errors import RateLimited
from runyard.services.pagination import Page
from runyard.services.plans import PlanService
from runyard.wiring import Platform


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


async def authenticate(platform: Platform, plans: PlanService | None, authorization: str,
                       state: dict[str, Any]) -> Principal:
    """The principal of an ``Authorization: Bearer`` header, counted against its
    workspace plan's requests per minute (services/plans.py).

    ``state`` is the request's scope state: the principal and quota are recorded there
    (the request-id middleware turns the quota into X-RateLimit-* headers).
    """
    scheme, _, key = authorization.partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    # The common case is a key seen in the last seconds: no thread hop for it.
    principal = (platform.tokens.authenticate_cached(key) if key else None) or \
        await in_thread(platform.tokens.authenticate, key or None)
    state["principal"] = principal
    if plans is not None and not plans.is_operator(principal):
        await count_request(plans, principal.workspace_id, state)
    return principal


async def count_request(plans: PlanService, workspace_id: str, state: dict[str, Any]) -> None:
    """Count the request (no thread hop unless the plan or a lease must be read from the
    database); the quota goes into ``state`` (None: unlimited), a refusal raises 429. The
    operator's own keys are not counted (services.plans)."""
    limits = plans.cached_limits(workspace_id) or await in_thread(plans.limits, workspace_id)
    try:
        quota = plans.hit_request_nowait(workspace_id, limits)
        if quota is False:
            quota = await in_thread(plans.hit_request, workspace_id, limits)
        state["quota"] = quota
    except RateLimited as exc:
        state["quota"] = exc.quota  # type: ignore[attr-defined]
        raise


# Compat prefixes whose clients send their key as ``X-API-Key`` (DataGen's SDK) rather than
# ``Authorization: Bearer``; everywhere else that header means nothing.
API_KEY_HEADER_PREFIXES = ("/compat/datagen/",)
# Compat prefixes whose clients send the key wrapped in a JWT (DeepOrigin's client decodes its
# token as one before every request): runyard.compat.deeporigin.token_for/key_of.
WRAPPED_KEY_PREFIXES = ("/compat/deeporigin/",)


def authorization_of(path: str, authorization: str, x_api_key: str) -> str:
    """The ``Authorization`` value a request authenticates with: its own, or under
    ``API_KEY_HEADER_PREFIXES`` its ``X-API-Key`` as a bearer key when it sent no other, or
    under ``WRAPPED_KEY_PREFIXES`` the key its bearer token wraps (a bare key stays as sent)."""
    if not authorization and x_api_key and path.startswith(API_KEY_HEADER_PREFIXES):
        return f"Bearer {x_api_key}"
    if path.startswith(WRAPPED_KEY_PREFIXES):
        scheme, _, token = authorization.partition(" ")
        key = key_of(token.strip()) if scheme.lower() == "bearer" else None
        if key is not None:
            return f"Bearer {key}"
    return authorization


async def get_principal(request: Request) -> Principal:
    state = request.scope.setdefault("state", {})
    if (principal := state.get("principal")) is not None:
        return principal  # authenticated before its body was read (api.guard)
    authorization = authorization_of(request.scope["path"], request.headers.get("authorization", ""),
                                     request.headers.get("x-api-key", ""))
    return await authenticate(request.app.state.platform, request.app.state.rate_limiter, authorization, state)


PlatformDep = Annotated[Platform, Depends(get_platform)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def paged(call: Callable[..., Page], *args: Any, **kwargs: Any) -> dict:
    """A service's list operation, run off the event loop, as the API's list body."""
    return page_body(await in_thread(call, *args, **kwargs))


def page_body(page: Page) -> dict:
    return {"object": "list", "items": page.items, "next_cursor": page.next_cursor, "total": page.total}

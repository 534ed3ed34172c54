"""/tokens — API keys (admin only; services.tokens decides what a key may mint and see)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.tokens import TokenCreate, TokenPermissions, TokenView

router = APIRouter(tags=["tokens"], responses=error_responses(*AUTHENTICATED))


@router.post("/tokens", status_code=201, response_model=TokenView, response_model_exclude_unset=True,
             responses=error_responses(404, 413))
async def create_token(body: TokenCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(
        platform.tokens.create, principal, name=body.name, role=body.role,
        expires_at=body.expires_at, restrictions=body.restrictions.model_dump() if body.restrictions else None,
        user=body.user)


@router.get("/tokens", response_model=Page[TokenView], response_model_exclude_unset=True)
async def list_tokens(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                      limit: int = Query(50), include_total: bool = False) -> dict:
    return await paged(platform.tokens.list, principal, cursor=cursor, limit=limit,
                           include_total=include_total)


@router.get("/tokens/{token_id}", response_model=TokenView, response_model_exclude_unset=True, responses=error_responses(404))
async def get_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.tokens.get, principal, token_id)


@router.delete("/tokens/{token_id}", status_code=204, responses=error_responses(404))
async def delete_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.tokens.delete, principal, token_id)
    return Response(status_code=204)


@router.get("/tokens/{token_id}/permissions", response_model=TokenPermissions, responses=error_responses(404))
async def token_permissions(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """What the token may do: its role, its tools and its access to each namespace it reaches."""
    return await in_thread(platform.tokens.permissions, principal, token_id, platform.namespaces)

"""/tokens — API keys (admin only; services.tokens decides what a key may mint and see)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses

router = APIRouter(tags=["tokens"], responses=error_responses(*AUTHENTICATED))


class Restrictions(BaseModel):
    tools: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list, description=(
        "not supported yet (there are no namespaces): must be empty, else 400 unsupported_restriction"))


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "member", "viewer"] = "member"
    expires_at: datetime | None = None
    restrictions: Restrictions | None = None


@router.post("/tokens", status_code=201, responses=error_responses(413))
async def create_token(body: TokenCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(
        platform.tokens.create, principal, name=body.name, role=body.role,
        expires_at=body.expires_at, restrictions=body.restrictions.model_dump() if body.restrictions else None)


@router.get("/tokens")
async def list_tokens(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                      limit: int = Query(50), include_total: bool = False) -> dict:
    page = await in_thread(platform.tokens.list, principal, cursor=cursor, limit=limit,
                           include_total=include_total)
    return page_body(page)


@router.get("/tokens/{token_id}", responses=error_responses(404))
async def get_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.tokens.get, principal, token_id)


@router.delete("/tokens/{token_id}", status_code=204, responses=error_responses(404))
async def delete_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.tokens.delete, principal, token_id)
    return Response(status_code=204)

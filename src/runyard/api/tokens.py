"""/tokens — API keys (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread

router = APIRouter(tags=["tokens"])


class Restrictions(BaseModel):
    tools: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "member", "viewer"] = "member"
    expires_at: datetime | None = None
    restrictions: Restrictions | None = None


@router.post("/tokens", status_code=201)
async def create_token(body: TokenCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    principal.require("admin", "manage tokens")
    return await in_thread(
        platform.tokens.create, principal.workspace_id, name=body.name, role=body.role,
        expires_at=body.expires_at, restrictions=body.restrictions.model_dump() if body.restrictions else None)


@router.get("/tokens")
async def list_tokens(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                      limit: int = Query(50), include_total: bool = False) -> dict:
    principal.require("admin", "manage tokens")
    page = await in_thread(platform.tokens.list, principal.workspace_id, cursor=cursor, limit=limit,
                           include_total=include_total)
    return page_body(page)


@router.get("/tokens/{token_id}")
async def get_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    principal.require("admin", "manage tokens")
    return await in_thread(platform.tokens.get, principal.workspace_id, token_id)


@router.delete("/tokens/{token_id}", status_code=204)
async def delete_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    principal.require("admin", "manage tokens")
    await in_thread(platform.tokens.delete, principal.workspace_id, token_id)
    return Response(status_code=204)

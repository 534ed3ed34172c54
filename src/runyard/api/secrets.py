"""/secrets — encrypted values; reads return metadata and a masked hint only."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread

router = APIRouter(tags=["secrets"])


class SecretPut(BaseModel):
    value: str = Field(min_length=1)
    display_name: str | None = Field(default=None, max_length=200)
    description: str | None = None
    category: str | None = Field(default=None, max_length=100)


@router.put("/secrets/{name}")
async def put_secret(name: str, body: SecretPut, platform: PlatformDep, principal: PrincipalDep,
                     force: bool = False) -> dict:
    principal.require("member", "set secrets")
    return await in_thread(
        platform.secrets.put, principal.workspace_id, name, value=body.value, display_name=body.display_name,
        description=body.description, category=body.category, force=force)


@router.get("/secrets")
async def list_secrets(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                       limit: int = Query(100), include_total: bool = False) -> dict:
    page = await in_thread(platform.secrets.list, principal.workspace_id, cursor=cursor, limit=limit,
                           include_total=include_total)
    return page_body(page)


@router.delete("/secrets/{name}", status_code=204)
async def delete_secret(name: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    principal.require("member", "delete secrets")
    await in_thread(platform.secrets.delete, principal.workspace_id, name)
    return Response(status_code=204)

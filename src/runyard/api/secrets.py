"""/secrets — encrypted values; reads return metadata and a masked hint only (scoping: services.secrets)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.secrets import SecretPut, SecretView

router = APIRouter(tags=["secrets"], responses=error_responses(*AUTHENTICATED))


@router.put("/secrets/{name}", response_model=SecretView, response_model_exclude_unset=True, responses=error_responses(409, 413))
async def put_secret(name: str, body: SecretPut, platform: PlatformDep, principal: PrincipalDep,
                     force: bool = False) -> dict:
    return await in_thread(
        platform.secrets.put, principal, name, value=body.value, display_name=body.display_name,
        description=body.description, category=body.category, force=force)


@router.get("/secrets", response_model=Page[SecretView], response_model_exclude_unset=True)
async def list_secrets(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                       limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.secrets.list, principal, cursor=cursor, limit=limit,
                           include_total=include_total)


@router.delete("/secrets/{name}", status_code=204, responses=error_responses(404))
async def delete_secret(name: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.secrets.delete, principal, name)
    return Response(status_code=204)

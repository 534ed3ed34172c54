"""/namespaces — owned groups of datasets and who they are shared with (services.namespaces)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.users import MemberPut, MemberView, NamespaceCreate, NamespaceUpdate, NamespaceView

router = APIRouter(tags=["namespaces"], responses=error_responses(*AUTHENTICATED))


@router.post("/namespaces", status_code=201, response_model=NamespaceView, responses=error_responses(409, 413))
async def create_namespace(body: NamespaceCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.namespaces.create, principal, **body.model_dump())


@router.get("/namespaces", response_model=Page[NamespaceView])
async def list_namespaces(platform: PlatformDep, principal: PrincipalDep,
                          owner: str = Query("all", description="self, a username, or all"),
                          cursor: str | None = None, limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.namespaces.list, principal, owner=owner, cursor=cursor, limit=limit,
                       include_total=include_total)


@router.get("/namespaces/{ns}", response_model=NamespaceView, responses=error_responses(404))
async def get_namespace(ns: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.namespaces.get, principal, ns)


@router.patch("/namespaces/{ns}", response_model=NamespaceView, responses=error_responses(404, 409))
async def update_namespace(ns: str, body: NamespaceUpdate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    fields = body.model_dump(exclude_unset=True)
    return await in_thread(platform.namespaces.update, principal, ns, new_name=fields.pop("name", None), **fields)


@router.delete("/namespaces/{ns}", status_code=204, responses=error_responses(404, 409))
async def delete_namespace(ns: str, platform: PlatformDep, principal: PrincipalDep, force: bool = False) -> Response:
    await in_thread(platform.namespaces.delete, principal, ns, force=force)
    return Response(status_code=204)


@router.get("/namespaces/{ns}/members", response_model=Page[MemberView], responses=error_responses(404))
async def list_members(ns: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    items = await in_thread(platform.namespaces.members, principal, ns)
    return {"object": "list", "items": items, "next_cursor": None, "total": len(items)}


@router.put("/namespaces/{ns}/members/{username}", response_model=MemberView, responses=error_responses(404))
async def put_member(ns: str, username: str, platform: PlatformDep, principal: PrincipalDep,
                     access: Literal["read", "write"] = "read") -> dict:
    return await in_thread(platform.namespaces.set_member, principal, ns, username=username, access=access)


@router.post("/namespaces/{ns}/members", status_code=201, response_model=MemberView,
             responses=error_responses(404))
async def add_member(ns: str, body: MemberPut, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.namespaces.set_member, principal, ns, username=body.username,
                           access=body.access)


@router.delete("/namespaces/{ns}/members/{username}", status_code=204, responses=error_responses(404))
async def remove_member(ns: str, username: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.namespaces.remove_member, principal, ns, username)
    return Response(status_code=204)

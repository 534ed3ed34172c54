"""/tools — deploy, read, update and delete versioned tools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from runyard.api.bodies import is_multipart, json_body, multipart_body, pick
from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.services.errors import ValidationFailed
from runyard.services.tools import VERSIONED_FIELDS

router = APIRouter(tags=["tools"])
_FIELDS = {"name", "code", "description", "visibility", *VERSIONED_FIELDS}
_DEPLOY_DOC = {"requestBody": {"content": {
    "application/json": {"schema": {"type": "object", "required": ["name", "code"], "properties": {
        "name": {"type": "string"}, "code": {"type": "string"}, "entrypoint": {"type": "string", "default": "main"},
        "description": {"type": "string"}, "input_schema": {"type": "object"}, "output_schema": {"type": "object"},
        "requirements": {"type": "array", "items": {"type": "string"}},
        "required_secrets": {"type": "array", "items": {"type": "string"}},
        "default_inputs": {"type": "object"}, "visibility": {"enum": ["private", "public"]},
        "timeout_s": {"type": "number"}, "memory_mb": {"type": "integer"}, "retries": {"type": "integer"},
        "reuse_process": {"type": "boolean", "default": False}}}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}, "config": {"type": "string", "description": "JSON object"}}}},
}}}


async def _read_tool_body(request: Request) -> tuple[dict[str, Any], tuple[str, bytes] | None]:
    if is_multipart(request):
        body, files = await multipart_body(request, "config")
        upload = None
        if files:
            if set(files) != {"file"}:
                raise ValidationFailed("upload the source as the single file part named 'file'",
                                       details={"fields": sorted(files)})
            filename, fh = files["file"]
            upload = (filename, fh.read())
        return pick(body, _FIELDS), upload
    return pick(await json_body(request), _FIELDS), None


@router.post("/tools", status_code=201, openapi_extra=_DEPLOY_DOC)
async def deploy_tool(request: Request, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    principal.require("member", "deploy tools")
    body, upload = await _read_tool_body(request)
    name = body.pop("name", None)
    if not name:
        raise ValidationFailed("name is required", details={"field": "name"})
    principal.require_tool(name)
    tool, created = await in_thread(
        lambda: platform.tools.deploy(principal.workspace_id, name=name, code=body.pop("code", None), upload=upload,
                                      entrypoint=body.pop("entrypoint", None) or "main",
                                      description=body.pop("description", None) or "",
                                      visibility=body.pop("visibility", None) or "private", **body))
    return JSON(tool, status_code=201 if created else 200)


@router.get("/tools")
async def list_tools(platform: PlatformDep, principal: PrincipalDep, search: str | None = None,
                     sort: str = "created_at", order: str = "desc", cursor: str | None = None,
                     limit: int = Query(50), include_total: bool = False) -> dict:
    page = await in_thread(
        platform.tools.list, principal.workspace_id, search=search, sort=sort, order=order, cursor=cursor,
        limit=limit, include_total=include_total, only=principal.tools)
    return page_body(page)


@router.get("/tools/{ref}")
async def get_tool(ref: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    tool = await in_thread(platform.tools.get, principal.workspace_id, ref)
    principal.require_tool(tool["name"])
    return tool


@router.patch("/tools/{ref}", openapi_extra=_DEPLOY_DOC)
async def update_tool(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    principal.require("member", "update tools")
    body, upload = await _read_tool_body(request)
    if "name" in body:
        raise ValidationFailed("a tool cannot be renamed", details={"field": "name"})
    current = await in_thread(platform.tools.get, principal.workspace_id, ref)
    principal.require_tool(current["name"])
    return await in_thread(lambda: platform.tools.update(principal.workspace_id, ref, upload=upload, **body))


@router.get("/tools/{ref}/versions")
async def list_versions(ref: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(50)) -> dict:
    tool = await in_thread(platform.tools.get, principal.workspace_id, ref)
    principal.require_tool(tool["name"])
    page = await in_thread(platform.tools.versions, principal.workspace_id, ref, cursor=cursor, limit=limit)
    return page_body(page)


@router.get("/tools/{ref}/versions/{version}")
async def get_version(ref: str, version: int, platform: PlatformDep, principal: PrincipalDep) -> dict:
    tool = await in_thread(platform.tools.get, principal.workspace_id, ref)
    principal.require_tool(tool["name"])
    return await in_thread(platform.tools.get_version, principal.workspace_id, ref, version)


@router.delete("/tools/{ref}", status_code=204)
async def delete_tool(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    principal.require("member", "delete tools")
    tool = await in_thread(platform.tools.get, principal.workspace_id, ref)
    principal.require_tool(tool["name"])
    await in_thread(platform.tools.delete, principal.workspace_id, ref)
    return Response(status_code=204)

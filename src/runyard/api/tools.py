"""/tools — deploy, read, update and delete versioned tools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from runyard.api.bodies import is_multipart, json_body, multipart_body, pick
from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.responses import JSON
from runyard.services.errors import ValidationFailed
from runyard.services.tools import DEPLOY_TOOLS, UPDATE_TOOLS, VERSIONED_FIELDS

router = APIRouter(tags=["tools"], responses=error_responses(*AUTHENTICATED))
_FIELDS = {"name", "code", "description", "visibility", *VERSIONED_FIELDS}
_DEPLOY_DOC = {"requestBody": {"content": {
    "application/json": {"schema": {"type": "object", "required": ["name", "code"], "properties": {
        "name": {"type": "string"}, "code": {"type": "string"}, "entrypoint": {"type": "string", "default": "main"},
        "description": {"type": "string"}, "input_schema": {"type": "object"}, "output_schema": {"type": "object"},
        "requirements": {"type": "array", "items": {"type": "string"}},
        "required_secrets": {"type": "array", "items": {"type": "string"}},
        "default_inputs": {"type": "object"}, "visibility": {"enum": ["private", "public"]},
        "timeout_s": {"type": "number"}, "memory_mb": {"type": "integer"}, "retries": {"type": "integer"},
        "reuse_process": {"type": "boolean", "default": False},
        "retry_on": {"type": "array", "items": {"enum": ["error", "worker_lost", "timeout"]},
                     "default": ["worker_lost"]},
        "retry_backoff_s": {"type": "number", "minimum": 0, "maximum": 3600, "default": 0},
        "network": {"type": "boolean", "default": True}}}},
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


@router.post("/tools", status_code=201, openapi_extra=_DEPLOY_DOC, responses={
    200: {"description": "A new version of an existing tool (or the tool, when nothing changed)"},
    **error_responses(409, 413, 415)})
async def deploy_tool(request: Request, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    DEPLOY_TOOLS.check(principal)  # before the upload is read; the service checks again
    body, upload = await _read_tool_body(request)
    name = body.pop("name", None)
    if not name:
        raise ValidationFailed("name is required", details={"field": "name"})
    tool, created = await in_thread(
        lambda: platform.tools.deploy_for(principal, name=name, code=body.pop("code", None), upload=upload,
                                          entrypoint=body.pop("entrypoint", None) or "main",
                                          description=body.pop("description", None) or "",
                                          visibility=body.pop("visibility", None) or "private", **body))
    return JSON(tool, status_code=201 if created else 200)


@router.get("/tools")
async def list_tools(platform: PlatformDep, principal: PrincipalDep, search: str | None = None,
                     sort: str = Query("created_at", json_schema_extra={"enum": ["name", "created_at", "updated_at"]}),
                     order: str = Query("desc", json_schema_extra={"enum": ["asc", "desc"]}), cursor: str | None = None,
                     limit: int = Query(50), include_total: bool = False) -> dict:
    page = await in_thread(
        lambda: platform.tools.list_for(principal, search=search, sort=sort, order=order, cursor=cursor,
                                        limit=limit, include_total=include_total))
    return page_body(page)


@router.get("/tools/{ref}", responses=error_responses(404))
async def get_tool(ref: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.tools.get_for, principal, ref)


@router.patch("/tools/{ref}", openapi_extra=_DEPLOY_DOC, responses=error_responses(404, 409, 413, 415))
async def update_tool(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    UPDATE_TOOLS.check(principal)  # before the upload is read; the service checks again
    body, upload = await _read_tool_body(request)
    if "name" in body:
        raise ValidationFailed("a tool cannot be renamed", details={"field": "name"})
    return await in_thread(lambda: platform.tools.update_for(principal, ref, upload=upload, **body))


@router.get("/tools/{ref}/versions", responses=error_responses(404))
async def list_versions(ref: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(50)) -> dict:
    page = await in_thread(lambda: platform.tools.versions_for(principal, ref, cursor=cursor, limit=limit))
    return page_body(page)


@router.get("/tools/{ref}/versions/{version}", responses=error_responses(404))
async def get_version(ref: str, version: int, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.tools.get_version_for, principal, ref, version)


@router.delete("/tools/{ref}", status_code=204, responses=error_responses(404))
async def delete_tool(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.tools.delete_for, principal, ref)
    return Response(status_code=204)

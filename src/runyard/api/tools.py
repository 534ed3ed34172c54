"""/tools — deploy, read, update and delete versioned tools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from runyard.api.bodies import is_multipart, json_body, multipart_body
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.responses import JSON
from runyard.schemas import inline_schema, parse
from runyard.schemas.common import Page
from runyard.schemas.tools import ToolDeploy, ToolUpdate, ToolVersionView, ToolView
from runyard.services.errors import ValidationFailed
from runyard.services.tools import DEPLOY_TOOLS, UPDATE_TOOLS

router = APIRouter(tags=["tools"], responses=error_responses(*AUTHENTICATED))
_MULTIPART = {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"}, "config": {"type": "string", "description": "JSON object"}}}}}
_DEPLOY_BODY = {"requestBody": {"content": {"application/json": {"schema": inline_schema(ToolDeploy)}, **_MULTIPART}}}
_UPDATE_BODY = {"requestBody": {"content": {"application/json": {"schema": inline_schema(ToolUpdate)}, **_MULTIPART}}}


async def _read_tool_body(request: Request, model: type[ToolDeploy] | type[ToolUpdate],
                          ) -> tuple[dict[str, Any], tuple[str, bytes] | None]:
    """The body's fields as given (``model`` checks their shapes) and an uploaded source."""
    if is_multipart(request):
        body, files = await multipart_body(request, "config")
        upload = None
        if files:
            if set(files) != {"file"}:
                raise ValidationFailed("upload the source as the single file part named 'file'",
                                       details={"fields": sorted(files)})
            filename, fh = files["file"]
            upload = (filename, fh.read())
        return parse(model, body).model_dump(exclude_unset=True), upload
    return parse(model, await json_body(request)).model_dump(exclude_unset=True), None


@router.post("/tools", status_code=201, openapi_extra=_DEPLOY_BODY, response_model=ToolView, responses={
    200: {"description": "A new version of an existing tool (or the tool, when nothing changed)"},
    **error_responses(409, 413, 415)})
async def deploy_tool(request: Request, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    DEPLOY_TOOLS.check(principal)  # before the upload is read; the service checks again
    body, upload = await _read_tool_body(request, ToolDeploy)
    name = body.pop("name")
    tool, created = await in_thread(
        lambda: platform.tools.deploy_for(principal, name=name, code=body.pop("code", None), upload=upload,
                                          entrypoint=body.pop("entrypoint", None) or "main",
                                          description=body.pop("description", None) or "",
                                          visibility=body.pop("visibility", None), **body))
    return JSON(tool, status_code=201 if created else 200)


@router.get("/tools", response_model=Page[ToolView], response_model_exclude_unset=True)
async def list_tools(platform: PlatformDep, principal: PrincipalDep, search: str | None = None,
                     sort: str = Query("created_at", json_schema_extra={"enum": ["name", "created_at", "updated_at"]}),
                     order: str = Query("desc", json_schema_extra={"enum": ["asc", "desc"]}), cursor: str | None = None,
                     limit: int = Query(50), include_total: bool = False) -> dict:
    return await paged(
        lambda: platform.tools.list_for(principal, search=search, sort=sort, order=order, cursor=cursor,
                                        limit=limit, include_total=include_total))


@router.get("/tools/{ref}", response_model=ToolView, response_model_exclude_unset=True,
            responses=error_responses(404))
async def get_tool(ref: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.tools.get_for, principal, ref)


@router.patch("/tools/{ref}", openapi_extra=_UPDATE_BODY, response_model=ToolView, response_model_exclude_unset=True,
              responses=error_responses(404, 409, 413, 415))
async def update_tool(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    UPDATE_TOOLS.check(principal)  # before the upload is read; the service checks again
    body, upload = await _read_tool_body(request, ToolUpdate)  # a "name" renames the tool (its id stays)
    return await in_thread(lambda: platform.tools.update_for(principal, ref, upload=upload, **body))


@router.get("/tools/{ref}/versions", response_model=Page[ToolVersionView], response_model_exclude_unset=True,
            responses=error_responses(404))
async def list_versions(ref: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(50)) -> dict:
    return await paged(lambda: platform.tools.versions_for(principal, ref, cursor=cursor, limit=limit))


@router.get("/tools/{ref}/versions/{version}", response_model=ToolVersionView, response_model_exclude_unset=True,
            responses=error_responses(404))
async def get_version(ref: str, version: int, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.tools.get_version_for, principal, ref, version)


@router.delete("/tools/{ref}", status_code=204, responses=error_responses(404))
async def delete_tool(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.tools.delete_for, principal, ref)
    return Response(status_code=204)

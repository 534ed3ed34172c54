"""/workflows (definitions, versions, drafts, tags) and /folders; runs of workflows are
made by ``POST /runs {workflow}`` (api.runs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from runyard.api.bodies import json_body
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.responses import JSON
from runyard.schemas import inline_schema, parse
from runyard.schemas.common import Page
from runyard.schemas.workflows import (
    FolderCreate,
    FolderPatch,
    FolderView,
    WorkflowCreate,
    WorkflowPatch,
    WorkflowPublish,
    WorkflowVersionView,
    WorkflowView,
)
from runyard.services.errors import PayloadTooLarge, ValidationFailed
from runyard.services.workflows import MAX_SOURCE_BYTES

router = APIRouter(tags=["workflows"], responses=error_responses(*AUTHENTICATED))
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
_SAVE_DOC = {"requestBody": {"content": {
    "application/json": {"schema": inline_schema(WorkflowCreate)},
    "application/yaml": {"schema": {"type": "string", "description": "the definition's YAML text"}},
}}}


async def _definition_body(request: Request) -> dict[str, Any]:
    """A body as ``{definition, …}``: YAML text (query parameters give the rest) or JSON."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in YAML_TYPES:
        raw = await request.body()
        if len(raw) > MAX_SOURCE_BYTES:
            raise PayloadTooLarge(f"a definition is at most {MAX_SOURCE_BYTES} bytes", code="payload_too_large")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("the definition is not UTF-8 text", code="invalid_yaml") from exc
        body: dict[str, Any] = {"definition": text}
        for key in ("draft",):
            if key in request.query_params:
                body[key] = request.query_params[key].lower() in ("1", "true", "yes")
        for key in ("folder_id", "tag"):
            if key in request.query_params:
                body[key] = request.query_params[key]
        return body
    return await json_body(request)


@router.post("/workflows", status_code=201, response_model=WorkflowView, openapi_extra=_SAVE_DOC, responses={
    200: {"description": "A new version (or the draft) of the workflow of that name"},
    **error_responses(404, 409, 413, 415)})
async def save_workflow(request: Request, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    body = parse(WorkflowCreate, await _definition_body(request))
    view, created = await in_thread(platform.workflows.save, principal, body.definition, draft=body.draft,
                                    folder_id=body.folder_id, tag=body.tag)
    return JSON(view, status_code=201 if created else 200)


@router.get("/workflows", response_model=Page[WorkflowView], response_model_exclude_unset=True)
async def list_workflows(platform: PlatformDep, principal: PrincipalDep, search: str | None = None,
                         name: str | None = None, kind: str | None = Query(None, json_schema_extra={
                             "enum": ["workflow", "block"]}),
                         folder_id: str | None = None,
                         sort: str = Query("created_at", json_schema_extra={
                             "enum": ["name", "created_at", "updated_at"]}),
                         order: str = Query("desc", json_schema_extra={"enum": ["asc", "desc"]}),
                         cursor: str | None = None, limit: int = Query(50), include_total: bool = False) -> dict:
    return await paged(platform.workflows.list, principal, search=search, name=name, kind=kind, folder_id=folder_id,
                       sort=sort, order=order, cursor=cursor, limit=limit, include_total=include_total)


@router.get("/workflows/{workflow}", response_model=WorkflowView, responses=error_responses(404))
async def get_workflow(workflow: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.workflows.get, principal, workflow)


@router.patch("/workflows/{workflow}", response_model=WorkflowView, openapi_extra={"requestBody": {"content": {
    "application/json": {"schema": inline_schema(WorkflowPatch)},
    "application/yaml": {"schema": {"type": "string"}}}}}, responses=error_responses(404, 409, 413, 415))
async def update_workflow(workflow: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    raw = await _definition_body(request)
    body = parse(WorkflowPatch, raw)
    folder = body.folder_id if "folder_id" in raw else ...
    return await in_thread(platform.workflows.update, principal, workflow, definition=body.definition,
                           draft=body.draft, folder_id=folder, tag=body.tag)


@router.delete("/workflows/{workflow}", status_code=204, responses=error_responses(404))
async def delete_workflow(workflow: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.workflows.delete, principal, workflow)
    return Response(status_code=204)


@router.get("/workflows/{workflow}/versions", response_model=Page[WorkflowVersionView],
            response_model_exclude_unset=True, responses=error_responses(404))
async def list_versions(workflow: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(50)) -> dict:
    return await paged(platform.workflows.versions, principal, workflow, cursor=cursor, limit=limit)


@router.post("/workflows/{workflow}/versions", response_model=WorkflowVersionView, responses=error_responses(404, 409))
async def publish_version(workflow: str, body: WorkflowPublish, platform: PlatformDep,
                          principal: PrincipalDep) -> dict:
    """Publish the draft as the next version (optionally tagged), or with ``version``, move
    ``tag`` onto that published version."""
    return await in_thread(platform.workflows.publish, principal, workflow, tag=body.tag, version=body.version)


@router.get("/workflows/{workflow}/versions/{version}", response_model=WorkflowVersionView,
            responses=error_responses(404))
async def get_version(workflow: str, version: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """One published version (a number or a tag) with its text."""
    return await in_thread(platform.workflows.version, principal, workflow, version)


# -- folders ---------------------------------------------------------------------------------
@router.post("/folders", status_code=201, response_model=FolderView, tags=["folders"], responses=error_responses(409))
async def create_folder(body: FolderCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.workflows.create_folder, principal, name=body.name, description=body.description)


@router.get("/folders", response_model=Page[FolderView], tags=["folders"])
async def list_folders(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                       limit: int = Query(100)) -> dict:
    return await paged(platform.workflows.list_folders, principal, cursor=cursor, limit=limit)


@router.get("/folders/{folder_id}", response_model=FolderView, tags=["folders"], responses=error_responses(404))
async def get_folder(folder_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.workflows.get_folder, principal, folder_id)


@router.patch("/folders/{folder_id}", response_model=FolderView, tags=["folders"], responses=error_responses(404, 409))
async def update_folder(folder_id: str, body: FolderPatch, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.workflows.update_folder, principal, folder_id, name=body.name,
                           description=body.description)


@router.delete("/folders/{folder_id}", status_code=204, tags=["folders"], responses=error_responses(404, 409))
async def delete_folder(folder_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.workflows.delete_folder, principal, folder_id)
    return Response(status_code=204)

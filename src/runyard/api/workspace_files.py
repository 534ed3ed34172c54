"""/workspace/files — files a workspace keeps (services.workspace_files); /workspace/storage — its usage.

Uploads stream: the form's file part goes to the blob store in chunks as it arrives
(api.streamed_form), so a file of gigabytes never sits in memory. Downloads are served
from the blob by Starlette's FileResponse (Range: 206 and 416), with the SHA-256 as the
ETag (If-None-Match: 304), as an attachment the browser does not sniff.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.guard import MAX_FORM_OVERHEAD_BYTES
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.streamed_form import stream_form
from runyard.schemas.common import Page
from runyard.schemas.workspace_files import StorageUsageView, WorkspaceFileView
from runyard.services.errors import ValidationFailed
from runyard.services.workspace_files import FileSink

router = APIRouter(tags=["workspace files"], responses=error_responses(*AUTHENTICATED))


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 says for it) or is ``*``."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


@router.get("/workspace/files", response_model=Page[WorkspaceFileView])
async def list_files(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                     limit: int = Query(100), include_total: bool = False,
                     prefix: str | None = Query(None, max_length=255)) -> dict:
    """The workspace's files by name: size, content type, SHA-256, when and by whom."""
    return await paged(platform.workspace_files.list, principal, cursor=cursor, limit=limit,
                       include_total=include_total, prefix=prefix)


@router.post("/workspace/files", status_code=201, response_model=WorkspaceFileView,
             responses=error_responses(409, 413, 507),
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "properties": {
                     "name": {"type": "string", "description": "the file's name (default: the part's file name)"},
                     "file": {"type": "string", "format": "binary"}},
                 "required": ["file"]}}}, "required": True}})
async def upload_file(request: Request, platform: PlatformDep, principal: PrincipalDep,
                      overwrite: bool = False) -> dict:
    """Store a file (multipart ``name`` + ``file``); an existing name is 409 ``file_exists``
    unless ``overwrite=true``. Refused uploads leave nothing behind."""
    length = request.headers.get("content-length", "")
    if not overwrite and length.isdigit():  # a body that cannot fit is refused before it is read
        await in_thread(platform.workspace_files.check_room, principal, int(length) - MAX_FORM_OVERHEAD_BYTES)
    sink: FileSink = await in_thread(platform.workspace_files.begin_upload, principal)
    try:
        form = await stream_form(request, sink)
    except BaseException:
        await in_thread(sink.abort)
        raise
    if form.filename is None:
        await in_thread(sink.abort)
        raise ValidationFailed("send the file in the multipart field 'file'", code="missing_file",
                               details={"field": "file"})
    name = form.fields.get("name") or form.filename
    return await in_thread(platform.workspace_files.commit, principal, sink, name=name,
                           content_type=form.content_type, overwrite=overwrite)


@router.get("/workspace/files/{name:path}", response_class=FileResponse, responses={
    200: {"description": "The file's bytes (Range: 206 Partial Content; 416 past its end)",
          "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
    206: {"description": "The requested byte range"},
    304: {"description": "Not modified: If-None-Match named the file's ETag"},
    **error_responses(404)})
async def download_file(name: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> Response:
    record = await in_thread(platform.workspace_files.get, principal, name)
    etag = _etag(record["sha256"])
    headers = {"ETag": etag, "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(record["path"], media_type=record["content_type"], filename=record["name"],
                        content_disposition_type="attachment", headers=headers)


@router.delete("/workspace/files/{name:path}", status_code=204, responses=error_responses(404))
async def delete_file(name: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.workspace_files.delete, principal, name)
    return Response(status_code=204)


@router.get("/workspace/storage", response_model=StorageUsageView)
async def storage_usage(platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Bytes the workspace keeps, by kind, and its storage quota."""
    return await in_thread(platform.workspace_files.usage, principal)

"""File ingestion, multipart uploads, ingestion records, previews and queries.

Maps HTTP onto services.ingestions, services.uploads and services.queries. The one route
that takes no bearer key is a part upload: its URL is signed (services.uploads checks it
before reading the body).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from runyard.api.bodies import multipart_body
from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.datasets import (
    EntityEntry,
    FileOptions,
    InferSchema,
    IngestionView,
    Preview,
    PreviewView,
    QueryRequest,
    QueryResult,
    RejectView,
    UploadComplete,
    UploadCreate,
    UploadURLs,
    UploadView,
)
from runyard.services.entities import check_config, preview_entities
from runyard.services.errors import ValidationFailed
from runyard.services.queries import QueryStream

router = APIRouter(tags=["ingestion"], responses=error_responses(*AUTHENTICATED))
parts_router = APIRouter(tags=["ingestion"], responses=error_responses(400, 403, 409, 413))
STREAM_CHUNK = 1 << 20


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _options(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return FileOptions.model_validate(raw).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(f"options: {first['msg']}", details={"field": "options." + ".".join(
            str(p) for p in first["loc"])}) from None


# -- small files in one request ---------------------------------------------------------------
@router.post("/namespaces/{ns}/datasets/{ds}/files", status_code=202, response_model=IngestionView,
             responses=error_responses(404, 409, 413),
             openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                 "type": "object", "properties": {"file": {"type": "string", "format": "binary"},
                                                  "options": {"type": "string", "description": "FileOptions as JSON"}},
                 "required": ["file"]}}}, "required": True}})
async def ingest_file(ns: str, ds: str, request: Request, platform: PlatformDep, principal: PrincipalDep,
                      create: bool = True) -> dict:
    """A file (CSV/TSV, JSON, NDJSON, Parquet, XLSX; gzip or zstd) ingested in the background."""
    body, files = await multipart_body(request, "options")
    if "file" not in files:
        raise ValidationFailed("send the file in the multipart field 'file'", code="missing_file",
                               details={"field": "file"})
    filename, stream = files["file"]
    options = _options(body) if body else None  # the "options" field's JSON object
    spool = platform.settings.data_dir / "work"

    def save() -> Path:
        spool.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spool, prefix=".file-")
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(STREAM_CHUNK):
                out.write(chunk)
        return Path(name)

    path = await in_thread(save)
    try:
        return await in_thread(platform.ingestions.submit_file, principal, ns, ds, source=path, filename=filename,
                               options=options, create=create)
    finally:
        path.unlink(missing_ok=True)


# -- multipart uploads ----------------------------------------------------------------------
@router.post("/uploads", status_code=201, response_model=UploadView, responses=error_responses(413))
async def create_upload(body: UploadCreate, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.uploads.create, principal, filename=body.filename, size=body.size,
                           part_size=body.part_size, base_url=base_url(request))


@router.get("/uploads/{upload_id}", response_model=UploadView, responses=error_responses(404))
async def get_upload(upload_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.uploads.get, principal, upload_id)


@router.post("/uploads/{upload_id}/urls", response_model=UploadView, responses=error_responses(404, 409))
async def upload_urls(upload_id: str, body: UploadURLs, request: Request, platform: PlatformDep,
                      principal: PrincipalDep) -> dict:
    return await in_thread(platform.uploads.urls, principal, upload_id, key=body.key, base_url=base_url(request))


@router.post("/uploads/{upload_id}/complete", status_code=202, response_model=IngestionView,
             responses=error_responses(404, 409, 413))
async def complete_upload(upload_id: str, body: UploadComplete, platform: PlatformDep,
                          principal: PrincipalDep) -> dict:
    return await in_thread(platform.uploads.complete, principal, upload_id, key=body.key,
                           parts=[p.model_dump() for p in body.parts], namespace=body.namespace,
                           dataset=body.dataset, name=body.name, create=body.create,
                           options=body.options.model_dump(exclude_none=True) if body.options else None)


@router.delete("/uploads/{upload_id}", status_code=204, responses=error_responses(404, 409))
async def abort_upload(upload_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.uploads.abort, principal, upload_id)
    return Response(status_code=204)


@parts_router.put("/uploads/{upload_id}/parts/{part_number}", responses=error_responses(507),
                  openapi_extra={"security": [], "requestBody": {"content": {"application/octet-stream": {
                      "schema": {"type": "string", "format": "binary"}}}, "required": True}})
async def put_part(upload_id: str, part_number: int, request: Request, platform: PlatformDep,
                   expires: str | None = None, signature: str | None = None) -> Response:
    """One part's bytes, to the signed URL ``POST /uploads`` gave (no bearer key). Answers its ETag."""
    length = request.headers.get("content-length")
    row = await in_thread(platform.uploads.authorize_part, upload_id, part_number, expires=expires,
                          signature=signature, content_length=int(length) if length and length.isdigit() else None)
    sink = await in_thread(platform.uploads.part_writer, row, part_number)
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= STREAM_CHUNK:
                await in_thread(sink.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await in_thread(sink.write, bytes(buffer))
        etag = await in_thread(platform.uploads.record_part, row, part_number, sink)
    finally:
        sink.close()
    return Response(content=f'{{"etag":"{etag}"}}', media_type="application/json", headers={"ETag": f'"{etag}"'})


# -- ingestion records -----------------------------------------------------------------------
@router.get("/namespaces/{ns}/datasets/{ds}/ingestions", response_model=Page[IngestionView],
            responses=error_responses(404))
async def list_ingestions(ns: str, ds: str, platform: PlatformDep, principal: PrincipalDep,
                          limit: int = Query(20, json_schema_extra={"minimum": 1, "maximum": 100})) -> dict:
    items = await in_thread(platform.ingestions.list, principal, ns, ds, limit=limit)
    return {"object": "list", "items": items, "next_cursor": None, "total": None}


@router.get("/ingestions/{ingestion_id}", response_model=IngestionView, responses=error_responses(404))
async def get_ingestion(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.ingestions.get, principal, ingestion_id)


@router.get("/ingestions/{ingestion_id}/wait", response_model=IngestionView, responses=error_responses(404))
async def wait_ingestion(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep,
                         timeout: float = Query(30.0, json_schema_extra={"minimum": 0, "maximum": 300})) -> dict:
    """The ingestion once it has finished, or as it is after ``timeout`` seconds."""
    if not 0 <= timeout <= 300:
        raise ValidationFailed("timeout must be between 0 and 300 seconds", details={"field": "timeout"})
    return await in_thread(platform.ingestions.wait, principal, ingestion_id, timeout)


@router.post("/ingestions/{ingestion_id}/retry", response_model=IngestionView, responses=error_responses(404, 409))
async def retry_ingestion(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.ingestions.retry, principal, ingestion_id)


@router.post("/ingestions/{ingestion_id}/seen", response_model=IngestionView, responses=error_responses(404))
async def seen_ingestion(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.ingestions.seen, principal, ingestion_id)


@router.post("/ingestions/{ingestion_id}/cancel", response_model=IngestionView, responses=error_responses(404, 409))
async def cancel_ingestion(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.ingestions.cancel, principal, ingestion_id)


@router.get("/ingestions/{ingestion_id}/rejects", response_model=Page[RejectView], responses=error_responses(404))
async def ingestion_rejects(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep,
                            cursor: str | None = None, limit: int = Query(100)) -> dict:
    return page_body(await in_thread(platform.ingestions.rejects, principal, ingestion_id, cursor=cursor, limit=limit))


@router.get("/ingestions/{ingestion_id}/entities", response_model=Page[EntityEntry], responses=error_responses(404))
async def ingestion_entities(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep,
                             cursor: str | None = None, limit: int = Query(100)) -> dict:
    """Entity resolution: each ingested row's entity and what happened to it, in row order."""
    return page_body(await in_thread(platform.ingestions.entities, principal, ingestion_id, cursor=cursor,
                                     limit=limit))


# -- preview and inference -------------------------------------------------------------------
async def _preview(platform: Any, principal: Any, body: Preview | InferSchema, limit: int, sample: int) -> dict:
    options = _options(body.options.model_dump() if body.options else None)
    resolution = check_config((options or {}).get("entity_resolution"), "options.entity_resolution")
    found = await in_thread(platform.uploads.preview, principal, rows=body.rows, upload_id=body.upload_id,
                            key=body.key, options=options, limit=limit, sample=sample)
    if resolution is not None:  # the previewed rows among themselves: a preview has no dataset
        found = {**found, "entity_resolution": await in_thread(preview_entities, found, resolution)}
    return found


@router.post("/ingest/preview", response_model=PreviewView, responses=error_responses(404, 409, 413, 502, 504))
async def preview(body: Preview, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The rows and schema a file (an upload) or JSON rows would give, saving nothing."""
    return {"object": "preview", **await _preview(platform, principal, body, body.limit, max(body.limit, 1000))}


@router.post("/infer-schema", responses=error_responses(404, 409, 413, 502, 504))
async def infer_schema(body: InferSchema, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Per column: type, nullability and detected kinds (email, url, uuid, ...), with confidence."""
    found = await _preview(platform, principal, body, 0, body.sample)
    return {"object": "inferred_schema", "columns": found["columns"]}


# -- query -----------------------------------------------------------------------------------
@router.post("/query", response_model=QueryResult, responses=error_responses(404, 409, 502, 504),
             openapi_extra={"responses": {"200": {"content": {
                 "application/x-ndjson": {}, "text/csv": {}, "application/vnd.apache.parquet": {},
                 "application/vnd.apache.arrow.stream": {}}}}})
async def query(body: QueryRequest, platform: PlatformDep, principal: PrincipalDep) -> Any:
    """``"*"`` (all rows of ``dataset``) or read-only SQL over ``"namespace"."dataset"``;
    JSON capped and paged by cursor, other formats streamed whole. With ``is_natural_language``
    the query is a question a language model turns into SQL first (docs/llm.md)."""
    sql, trace = body.query, None
    if body.is_natural_language:
        if body.cursor:
            raise ValidationFailed("a cursor pages the SQL a question became: send that SQL (the answer's `sql`) "
                                   "as the query, without is_natural_language", details={"field": "cursor"})
        sql, trace = await in_thread(platform.llm_features.question_to_sql, principal, body.query,
                                     namespace=body.namespace, dataset=body.dataset, provider=body.provider,
                                     model=body.model)
    elif body.provider or body.model:
        raise ValidationFailed("provider and model go with is_natural_language", details={"field": "provider"})
    result = await in_thread(platform.queries.run, principal, query=sql, namespace=body.namespace,
                             dataset=body.dataset, include_metadata=body.include_metadata, explain=body.explain,
                             format=body.format, limit=body.limit, cursor=body.cursor, timeout_s=body.timeout_s)
    if not isinstance(result, QueryStream):
        return {**result, "sql": sql, "trace": [trace]} if trace is not None else result
    stream = result

    async def chunks() -> AsyncIterator[bytes]:
        try:
            handle = await in_thread(stream.path.open, "rb")
            try:
                while chunk := await in_thread(handle.read, STREAM_CHUNK):
                    yield chunk
            finally:
                handle.close()
        finally:  # also when the client went away mid-stream
            await in_thread(stream.close)

    return StreamingResponse(chunks(), media_type=stream.content_type)

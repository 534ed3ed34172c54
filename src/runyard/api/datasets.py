"""/namespaces/{ns}/datasets, /datasets, /schema and row ingestion (services.datasets)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request, Response

from runyard.api.bodies import load_json
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.datasets import DatasetCreate, DatasetUpdate, DatasetView, RowsIngested, SchemaView
from runyard.services.errors import ValidationFailed

router = APIRouter(tags=["datasets"], responses=error_responses(*AUTHENTICATED))
NDJSON = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines")


@router.post("/namespaces/{ns}/datasets", status_code=201, response_model=DatasetView,
             responses=error_responses(404, 409, 413))
async def create_dataset(ns: str, body: DatasetCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    fields = body.model_dump()
    columns = [c for c in fields.pop("columns") or []]
    return await in_thread(platform.datasets.create, principal, ns, columns=columns, **fields)


@router.get("/namespaces/{ns}/datasets", response_model=Page[DatasetView], responses=error_responses(404))
async def list_namespace_datasets(ns: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                                  limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.datasets.list, principal, ns, cursor=cursor, limit=limit, include_total=include_total)


@router.get("/datasets", response_model=Page[DatasetView], responses=error_responses(404))
async def list_datasets(platform: PlatformDep, principal: PrincipalDep, namespace: str | None = None,
                        cursor: str | None = None, limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.datasets.list, principal, namespace, cursor=cursor, limit=limit,
                       include_total=include_total)


@router.get("/namespaces/{ns}/datasets/{ds}", response_model=DatasetView, responses=error_responses(404))
async def get_dataset(ns: str, ds: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.datasets.get, principal, ns, ds)


@router.patch("/namespaces/{ns}/datasets/{ds}", response_model=DatasetView, responses=error_responses(404, 409))
async def update_dataset(ns: str, ds: str, body: DatasetUpdate, platform: PlatformDep,
                         principal: PrincipalDep) -> dict:
    fields = body.model_dump(exclude_unset=True)
    return await in_thread(platform.datasets.update, principal, ns, ds, new_name=fields.pop("name", None), **fields)


@router.post("/namespaces/{ns}/datasets/{ds}/clear", response_model=DatasetView, responses=error_responses(404, 409))
async def clear_dataset(ns: str, ds: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.datasets.clear, principal, ns, ds)


@router.delete("/namespaces/{ns}/datasets/{ds}", status_code=204, responses=error_responses(404))
async def delete_dataset(ns: str, ds: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.datasets.delete, principal, ns, ds)
    return Response(status_code=204)


@router.get("/schema", response_model=SchemaView)
async def schema(platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.datasets.schema, principal)


@router.get("/schema/{ns}", response_model=SchemaView, responses=error_responses(404))
async def namespace_schema(ns: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.datasets.schema, principal, ns)


def parse_rows(raw: bytes, content_type: str, parsed: Any = None) -> list[Any]:
    """A JSON array of rows, or NDJSON (one row per line, blank lines skipped)."""
    media = content_type.partition(";")[0].strip().lower()
    if media in NDJSON:
        rows = []
        for number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise ValidationFailed(f"NDJSON line {number} is not valid JSON: {exc}", code="invalid_json",
                                           details={"line": number}) from None
        return rows
    value = parsed if parsed is not None else load_json(raw) if raw else None
    if isinstance(value, dict) and isinstance(value.get("rows"), list):
        value = value["rows"]
    if not isinstance(value, list):
        raise ValidationFailed("the body must be a JSON array of rows (or {\"rows\": [...]}, or NDJSON)",
                               code="invalid_rows")
    return value


@router.post("/namespaces/{ns}/datasets/{ds}/rows", status_code=201, response_model=RowsIngested,
             responses=error_responses(404, 409, 413, 502, 504),
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                 "application/x-ndjson": {"schema": {"type": "string"}}}, "required": True}})
async def ingest_rows(ns: str, ds: str, request: Request, platform: PlatformDep, principal: PrincipalDep,
                      create: bool = False, on_error: Literal["skip", "abort"] = "skip", curate: bool = False,
                      idempotency_key: str | None = Header(None, max_length=200)) -> dict:
    """Rows as a JSON array or NDJSON (or ``{rows, pipeline?, curate?, entity_resolution?}``);
    ``failed`` lists the rows that could not be stored. ``curate``: curate the namespace's ontology
    (activating the selected links) once the link suggestions are computed; see
    ``attributes.curation`` of ``GET /ingestions/{ingestion_id}``. ``entity_resolution``
    (``{match_type, columns, options?, policy?}``, docs/links.md): rows matching a stored entity
    get its ``_entity_id``; the result's ``entity_resolution`` reports each row's action."""
    raw = await request.body()
    parsed = request.scope.get("state", {}).get("json_body")
    content_type = request.headers.get("content-type", "")
    rows = parse_rows(raw, content_type, parsed)
    pipeline = None
    entity_resolution = None
    ndjson = content_type.partition(";")[0].strip().lower() in NDJSON
    if rows and not ndjson and raw.lstrip()[:1] == b"{":  # {"rows": [...], "pipeline": [...]}
        body = parsed if parsed is not None else load_json(raw)
        pipeline = body.get("pipeline") if isinstance(body, dict) else None
        entity_resolution = body.get("entity_resolution") if isinstance(body, dict) else None
        if isinstance(body, dict) and "curate" in body:
            if not isinstance(body["curate"], bool):
                raise ValidationFailed("curate must be true or false", details={"field": "curate"})
            curate = curate or body["curate"]
    return await in_thread(platform.datasets.ingest_rows, principal, ns, ds, rows, create=create, on_error=on_error,
                           idempotency_key=idempotency_key, body_bytes=len(raw), pipeline=pipeline, curate=curate,
                           entity_resolution=entity_resolution)

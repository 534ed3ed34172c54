"""DataLinks on the wire: the REST paths the official ``datalinks`` client (2.2.0) calls, served
from runyard's services, so that client works unchanged with
``DL_HOST=http://<runyard>/compat/datalinks`` and ``DL_API_KEY=<a runyard key>``.

Mounted at ``/compat/datalinks`` (outside ``/api/v1``, kept out of runyard's OpenAPI: the
contract is DataLinks'). Translation rules, documented in docs/compat.md:

- The client names a namespace as ``{username}/{namespace}``, ``username`` ``self`` for
  the caller. runyard's namespace names are unique per workspace, so ``self`` reaches any
  namespace the key can see; another username must be the namespace's owner (else 404).
- Ingestion ids travel as UUIDs (the client validates them as such): a runyard id
  ``ing_<ULID>`` and its UUID are the same 128 bits, so either form is accepted back.
- Errors answer DataLinks' error shape (``error_code``, ``message``), which the client
  prints in full, with runyard's envelope beside it under ``error``. Features of the ontology,
  pipelines and natural-language issue (17) not served yet (agent runs,
  conversations) answer 501 ``not_implemented``.
- Natural language (``naturalLanguageQuery``, ``/query/ask``, ``/query/autorag``) is runyard's
  model features (services.llm_features) under the caller's key; ask's events are translated
  into the client's (``plan`` ``steps``/``reasoning``, zero-based ``step`` ``index``/``query``/
  ``data``, ``answer`` ``response``). The ontology reads, curation and saves are services.ontology's;
  ``requestCleaning`` is a cleaning task (services.cleaning), its id a UUID as above.
- Links are runyard's (services.links) as ``ApiLink`` (``origin``/``destination``
  ``ri.<owner>.<namespace>.<dataset>.<column>``, ``matchType``, ``hits`` = matched row pairs),
  the options' wire names mapped onto runyard's (``minDistinct`` → ``min_distinct``,
  ``minVariation`` → ``min_variation``, ``distanceUnit`` → ``unit``); a key sees a link only
  when it can read both ends, as on runyard's own API.
- ``link`` on ``ingest`` and on an upload's ``finish`` is runyard's entity resolution on ingest
  (``entity_resolution_of``: the match type's ``targetColumns`` and options as for links,
  policy ``keep_first``); the ingest answer carries runyard's report as ``entityResolution``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from runyard.api.compat.shaped_errors import error_shaped_route
from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.errors import error_payload
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.services.access import Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.ontology import OntologyService
from runyard.timeutil import parse_rfc3339
from runyard.wiring import Platform

PREFIX = "/compat/datalinks"
SELF = "self"
FEATURE_ISSUE = "the ontology, pipelines and natural language (issue 17)"
# The client reads a query's rows in one answer (no cursor): runyard's pages are gathered
# up to this many rows, beyond which the query is refused rather than cut short unseen.
MAX_QUERY_ROWS = 100_000
QUERY_PAGE_ROWS = 10_000
PAGE = 1000  # rows per page when walking runyard's lists
PART_SIZE = 8 * 1024 * 1024  # DataLinks' documented part size (runyard's own default is larger)
MAX_PARTS = 10_000
NEVER = "9999-12-31T23:59:59Z"  # the client requires a token's expires_at as a string
TERMINAL_FOR_CLIENT = {"cancelled": "failed"}  # its wait loop knows no "cancelled"
_ONTOLOGY_QUERY = re.compile(r"^\s*Ontology\(\s*(?:([^/()\s]+)\s*/\s*)?([^/()\s]+)\s*\)\s*$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class NotServed(DomainError):
    """A DataLinks feature runyard does not serve (yet)."""

    status = 501
    code = "not_implemented"


class ResultTooLarge(DomainError):
    status = 413
    code = "result_too_large"


def not_served(feature: str) -> NotServed:
    return NotServed(f"{feature} is not served by runyard yet: it belongs to {FEATURE_ISSUE}",
                     details={"feature": feature, "issue": 17})


# -- errors in DataLinks' shape -----------------------------------------------------------
def datalinks_error(request: Request, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                    headers: dict[str, str] | None = None) -> JSON:
    envelope = error_payload(getattr(request.state, "request_id", None), code, message, details)
    sub_errors = [{"code": "invalid", "message": f"{e['field']}: {e['message']}"}
                  for e in (details or {}).get("errors", []) if isinstance(e, dict)]
    body: dict[str, Any] = {"error_code": code, "message": message, **envelope}
    if sub_errors:
        body["sub_errors"] = sub_errors
    return JSON(body, status_code=status, headers=headers)


CompatRoute = error_shaped_route(datalinks_error)


router = APIRouter(route_class=CompatRoute, include_in_schema=False)


# -- bodies (DataLinks' wire names; unknown fields ignored, as its server does) ----------------
class Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


Definitions = dict[str, str] | str | None


class CreateDatasetBody(Body):
    data_description: str | None = Field(default=None, alias="dataDescription", max_length=10_000)
    schema_definition: Definitions = Field(default=None, alias="schemaDefinition")


class IngestBody(Body):
    data: list[dict[str, Any]]
    infer: Any = None
    link: Any = None
    curate: bool | None = None
    data_description: str | None = Field(default=None, alias="dataDescription", max_length=10_000)
    schema_definition: Definitions = Field(default=None, alias="schemaDefinition")
    additional_instructions: str | None = Field(default=None, alias="additionalInstructions")


class InferDefinitionBody(Body):
    data_description: str | None = Field(default=None, alias="dataDescription", max_length=10_000)
    schema_definition: Definitions = Field(default=None, alias="schemaDefinition")
    field_definition: Definitions = Field(default=None, alias="fieldDefinition")  # 1.x's name


class SortOrderBody(Body):
    order: list[str]


class PrepareBody(Body):
    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1)


class FinishedPart(Body):
    part_number: int = Field(alias="partNumber", ge=1)
    etag: str = Field(min_length=1)


class FinishBody(Body):
    upload_id: str = Field(alias="uploadId", min_length=1)
    key: str = Field(min_length=1)
    parts: list[FinishedPart] = Field(min_length=1)
    name: str | None = Field(default=None, max_length=255)
    infer: Any = None
    link: Any = None
    infer_batch_size: int | None = Field(default=None, alias="inferBatchSize")  # sizes LLM batches: moot
    data_description: str | None = Field(default=None, alias="dataDescription", max_length=10_000)
    schema_definition: Definitions = Field(default=None, alias="schemaDefinition")


class AbortBody(Body):
    upload_id: str = Field(alias="uploadId", min_length=1)
    key: str = ""


class QueryBody(Body):
    username: str = SELF
    namespace: str | None = None
    dataset: str | None = None
    query: str = ""
    natural_language_query: str | None = Field(default=None, alias="naturalLanguageQuery")
    model: str | None = None
    provider: str | None = None
    explain_requested: bool | None = Field(default=None, alias="explainRequested")


class PermissionEntry(Body):
    username: str = SELF
    namespace: str = Field(min_length=1)
    dataset: str | None = None


class TokenBody(Body):
    name: str
    expires_at: str | None = None
    access_restricted_to: list[PermissionEntry] | None = Field(default=None, alias="accessRestrictedTo")


class ColumnRef(Body):
    username: str = SELF
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    column_name: str = Field(alias="columnName", min_length=1, max_length=511)


class AddLinkBody(Body):
    from_: ColumnRef = Field(alias="from")
    to: ColumnRef
    match_type: str = Field(default="ExactMatch", alias="matchType")
    options: dict[str, Any] | None = None


class LinksBody(Body):
    data: Any = None  # the client sends the dataset's rows; runyard links the stored snapshot
    link: dict[str, Any] | None = None


class ShareBody(Body):
    username: str = Field(min_length=1)
    role: str = "viewer"


# -- translations --------------------------------------------------------------------------
def wire_id(runyard_id: str) -> str:
    """``ing_<ULID>`` as the UUID holding the same 128 bits (the client validates UUIDs)."""
    _, _, body = runyard_id.partition("_")
    value = 0
    for ch in body.upper():
        index = _CROCKFORD.find(ch)
        if index < 0 or len(body) != 26:
            return runyard_id  # not a ULID-bodied id: sent as it is
        value = value * 32 + index
    if value >= 1 << 128:
        return runyard_id
    return str(uuid.UUID(int=value))


def runyard_id(given: str, prefix: str = "ing") -> str:
    """The runyard id behind a UUID from :func:`wire_id` (a runyard id is taken as it is)."""
    try:
        value = uuid.UUID(given).int
    except ValueError:
        return given
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def definitions(raw: Definitions) -> dict[str, str] | None:
    """Field definitions as a mapping; the documented text form is one ``field=description`` a line."""
    if raw is None or isinstance(raw, dict):
        return raw
    out: dict[str, str] = {}
    for line in raw.splitlines():
        field, sep, text = line.partition("=")
        if not line.strip():
            continue
        if not sep or not field.strip():
            raise ValidationFailed("a field definition line reads field=description", code="validation_error",
                                   details={"field": "schemaDefinition"})
        out[field.strip()] = text.strip()
    return out


def visibility(ns_view: dict[str, Any]) -> str:
    return "Private" if ns_view.get("private", True) else "Public"


def dataset_description(ds: dict[str, Any], ns_view: dict[str, Any] | None) -> dict[str, Any]:
    owner = (ns_view or {}).get("owner") or ""
    return {"name": ds["name"], "namespace": ds["namespace"], "nameWithNamespace": f"{ds['namespace']}.{ds['name']}",
            "owner": owner, "user": owner, "visibility": visibility(ns_view or {}),
            "description": ds.get("description") or "", "rowCount": ds.get("rows", 0)}


def ingestion_record(ing: dict[str, Any]) -> dict[str, Any]:
    """A runyard ingestion as the client's ingestion-tracking record."""
    status = ing["status"]
    attrs = ing.get("attributes") or {}
    attributes: dict[str, Any] = {"name": attrs.get("name") or attrs.get("filename")}
    if attrs.get("seen_at"):
        attributes["seenAt"] = attrs["seen_at"]
    original = attrs.get("original_ingestion_id") or attrs.get("retry_of")
    if original:
        attributes["originalIngestionId"] = wire_id(original)
    if attrs.get("last_retry_at"):
        attributes["lastRetryAt"] = attrs["last_retry_at"]
    return {"id": wire_id(ing["id"]), "status": TERMINAL_FOR_CLIENT.get(status, status),
            "statusMessage": ing.get("status_message") or (status if status in TERMINAL_FOR_CLIENT else None),
            "processedBytes": ing.get("processed_bytes") or 0,
            "expectedTotalBytes": ing.get("expected_total_bytes") or 0,
            "processedRows": ing.get("processed_rows") or 0, "failedRows": ing.get("failed_rows") or 0,
            "attributes": attributes, "seen": bool(ing.get("seen")), "runyardId": ing["id"],
            "runyardStatus": status, "createdAt": ing.get("created_at"), "finishedAt": ing.get("finished_at")}


def all_pages(call: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = call(*args, cursor=cursor, limit=PAGE, **kwargs)
        out += page.items
        cursor = page.next_cursor
        if cursor is None:
            return out


def namespace_of(platform: Platform, principal: Principal, username: str, namespace: str) -> dict[str, Any]:
    """The namespace's view, when ``username`` (``self`` or its owner) names it; else 404."""
    view = platform.namespaces.get(principal, namespace)
    if username != SELF and view.get("owner") != username:
        raise NotFound(f"namespace {username}/{namespace} not found", code="namespace_not_found",
                       details={"namespace": namespace, "username": username})
    return view


def check_owner(platform: Platform, principal: Principal, username: str, namespace: str) -> None:
    if username != SELF:  # "self" needs no look-up: the service checks access itself
        namespace_of(platform, principal, username, namespace)


def namespace_views(platform: Platform, principal: Principal) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in all_pages(platform.namespaces.list, principal, owner="all")}


def refuse_ai(**given: Any) -> None:
    """Options that would have no effect: refused, never silently dropped."""
    names = {"additional_instructions": "AI instructions (`additionalInstructions`) without inference steps"}
    for name, value in given.items():
        if value not in (None, False, "", [], {}):
            raise not_served(names[name])


# -- datasets --------------------------------------------------------------------------------
def _create_space(platform: Platform, principal: Principal, namespace: str, dataset: str,
                  body: CreateDatasetBody) -> dict[str, Any]:
    # A DataLinks space is a dataset; its namespace comes with it when new.
    try:
        platform.namespaces.create(principal, name=namespace, private=True)
    except Conflict:
        pass
    return platform.datasets.create(principal, namespace, name=dataset, description=body.data_description or "",
                                    field_definitions=definitions(body.schema_definition))


@router.post("/ingest/new/{namespace}/{dataset}", status_code=201)
async def create_dataset(namespace: str, dataset: str, body: CreateDatasetBody, platform: PlatformDep,
                         principal: PrincipalDep) -> dict:
    ds = await in_thread(_create_space, platform, principal, namespace, dataset, body)
    return {"name": ds["name"], "namespace": ds["namespace"]}


def entity_resolution_of(link: Any, rows: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The client's ``link`` (``MatchTypeConfig.config``: ``{"ExactMatch": {"targetColumns",
    "minVariation", "minDistinct"}}`` or ``{"GeoMatch": {"targetColumns", "distance",
    "distanceUnit"}}``) as runyard's ``entity_resolution``: options named as for links, no
    ``targetColumns`` meaning every column of the rows (ExactMatch), policy ``keep_first``
    unless runyard's own ``policy`` key is given beside the match type."""
    if link in (None, {}):
        return None

    def refused(message: str, field: str = "link") -> ValidationFailed:
        return ValidationFailed(f"link: {message}", code="invalid_entity_resolution", details={"field": field})

    if not isinstance(link, dict):
        raise refused("an object naming ExactMatch or GeoMatch")
    given = {k: v for k, v in link.items() if k != "policy"}
    if len(given) != 1 or next(iter(given)) not in MATCH_TYPES:
        raise refused(f"one match type, ExactMatch or GeoMatch (got {', '.join(map(str, given)) or 'none'})")
    match_type, config = next(iter(given.items()))
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise refused(f"{match_type} is an object", f"link.{match_type}")
    columns = config.get("targetColumns")
    if columns is None:
        if match_type == "GeoMatch" or rows is None:
            raise refused(f"{match_type} needs targetColumns here", f"link.{match_type}.targetColumns")
        columns = list(dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r))
    out: dict[str, Any] = {"match_type": match_type, "columns": columns, "options": link_options(
        match_type, {k: v for k, v in config.items() if k != "targetColumns"})}
    if "policy" in link:
        out["policy"] = link["policy"]
    return out


def _ingest(platform: Platform, principal: Principal, namespace: str, dataset: str, body: IngestBody,
            body_bytes: int) -> dict[str, Any]:
    # All or nothing: the client retries a batch that failed as a whole, so a batch that
    # half landed would land twice.
    result = platform.datasets.ingest_rows(principal, namespace, dataset, body.data, create=False,
                                           on_error="abort", body_bytes=body_bytes, curate=bool(body.curate),
                                           entity_resolution=entity_resolution_of(body.link, body.data))
    if body.data_description is not None or body.schema_definition is not None:
        platform.datasets.update(principal, namespace, dataset, description=body.data_description,
                                 field_definitions=definitions(body.schema_definition))
    return result


@router.post("/ingest/{namespace}/{dataset}")
async def ingest(namespace: str, dataset: str, body: IngestBody, request: Request, platform: PlatformDep,
                 principal: PrincipalDep) -> dict:
    if body.infer is not None:  # inference steps: runyard's pipeline with model steps
        return await in_thread(_ingest_inferred, platform, principal, namespace, dataset, body,
                               int(request.headers.get("content-length") or 0))
    refuse_ai(additional_instructions=body.additional_instructions)  # guidance with no step to guide
    size = int(request.headers.get("content-length") or 0)
    result = await in_thread(_ingest, platform, principal, namespace, dataset, body, size)
    return {"indexed": result["ingested"], "ingestionId": wire_id(result["ingestion_id"]),
            "snapshot": result.get("snapshot"),
            **({"entityResolution": result["entity_resolution"]} if result.get("entity_resolution") else {})}


def _list_datasets(platform: Platform, principal: Principal, namespace: str | None,
                   username: str = SELF) -> list[dict[str, Any]]:
    if namespace is not None:
        check_owner(platform, principal, username, namespace)
    views = namespace_views(platform, principal)
    found = all_pages(platform.datasets.list, principal, namespace)
    out = [dataset_description(d, views.get(d["namespace"])) for d in found]
    return sorted(out, key=lambda d: (d["namespace"], d["name"]))


@router.get("/data")
async def list_datasets(platform: PlatformDep, principal: PrincipalDep) -> list:
    return await in_thread(_list_datasets, platform, principal, None)


@router.get("/data/{namespace}")
async def list_datasets_in_namespace(namespace: str, platform: PlatformDep, principal: PrincipalDep) -> list:
    return await in_thread(_list_datasets, platform, principal, namespace)


def _dataset_info(platform: Platform, principal: Principal, username: str, namespace: str,
                  dataset: str) -> dict[str, Any]:
    ns_view = namespace_of(platform, principal, username, namespace)
    ds = platform.datasets.get(principal, namespace, dataset)
    names = ds.get("sort_order") or [c["name"] for c in ds.get("columns", [])]
    definition = {"dataDescription": ds.get("description") or None,
                  "schemaDefinition": ds.get("field_definitions") or None}
    return {"dataset": dataset_description(ds, ns_view),
            "metadata": {"columnNames": names, "rowCount": ds.get("rows", 0), **definition,
                         "columns": ds.get("columns", []), "bytes": ds.get("bytes", 0),
                         "lastIngestion": ds.get("last_ingestion"), "createdAt": ds.get("created_at"),
                         "updatedAt": ds.get("updated_at")},
            "inferDefinition": definition}


@router.get("/data/{username}/{namespace}/{dataset}")
async def dataset_info(username: str, namespace: str, dataset: str, platform: PlatformDep,
                       principal: PrincipalDep) -> dict:
    return await in_thread(_dataset_info, platform, principal, username, namespace, dataset)


def _on_dataset(platform: Platform, principal: Principal, owner: str, namespace: str, call: Callable[..., Any],
                /, *args: Any, **kwargs: Any) -> Any:
    check_owner(platform, principal, owner, namespace)
    return call(principal, namespace, *args, **kwargs)


@router.delete("/data/{username}/{namespace}/{dataset}/balefire", status_code=204)
async def delete_dataset(username: str, namespace: str, dataset: str, platform: PlatformDep,
                         principal: PrincipalDep) -> Response:
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.datasets.delete, dataset)
    return Response(status_code=204)


@router.delete("/data/{username}/{namespace}/balefire", status_code=204)
async def delete_namespace(username: str, namespace: str, platform: PlatformDep,
                           principal: PrincipalDep) -> Response:
    # Balefire takes everything in it, as its name says.
    await in_thread(_on_dataset, platform, principal, username, namespace,
                    lambda p, ns: platform.namespaces.delete(p, ns, force=True))
    return Response(status_code=204)


@router.post("/data/{username}/{namespace}/{dataset}/clear", status_code=204)
async def clear_dataset(username: str, namespace: str, dataset: str, platform: PlatformDep,
                        principal: PrincipalDep) -> Response:
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.datasets.clear, dataset)
    return Response(status_code=204)


async def _text_body(request: Request, what: str) -> str:
    try:
        text = (await request.body()).decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if not text:
        raise ValidationFailed(f"the body is the {what}'s new name, as text", details={"field": "body"})
    return text


@router.post("/data/{username}/{namespace}/{dataset}/rename", status_code=204)
async def rename_dataset(username: str, namespace: str, dataset: str, request: Request, platform: PlatformDep,
                         principal: PrincipalDep) -> Response:
    new_name = await _text_body(request, "dataset")
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.datasets.update, dataset,
                    new_name=new_name)
    return Response(status_code=204)


@router.post("/data/{username}/{namespace}/rename", status_code=204)
async def rename_namespace(username: str, namespace: str, request: Request, platform: PlatformDep,
                           principal: PrincipalDep) -> Response:
    new_name = await _text_body(request, "namespace")
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.namespaces.update,
                    new_name=new_name)
    return Response(status_code=204)


@router.put("/data/{username}/{namespace}/{dataset}/inferDefinition", status_code=204)
async def update_infer_definition(username: str, namespace: str, dataset: str, body: InferDefinitionBody,
                                  platform: PlatformDep, principal: PrincipalDep) -> Response:
    fields = definitions(body.schema_definition if body.schema_definition is not None else body.field_definition)
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.datasets.update, dataset,
                    description=body.data_description, field_definitions=fields)
    return Response(status_code=204)


@router.put("/schema/{username}/{namespace}/{dataset}/sort-order", status_code=204)
async def update_sort_order(username: str, namespace: str, dataset: str, body: SortOrderBody,
                            platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.datasets.update, dataset,
                    sort_order=body.order)
    return Response(status_code=204)


# -- schema listings ---------------------------------------------------------------------------
def _schema(platform: Platform, principal: Principal, namespace: str | None, username: str) -> list[dict[str, Any]]:
    if namespace is not None:
        check_owner(platform, principal, username, namespace)
    views = namespace_views(platform, principal)
    listed = platform.datasets.schema(principal, namespace)["datasets"]
    return [{**dataset_description(d, views.get(d["namespace"])), "columns": d["columns"]} for d in listed]


@router.get("/schema/datasets/all")
async def list_all_datasets(platform: PlatformDep, principal: PrincipalDep) -> list:
    return await in_thread(_schema, platform, principal, None, SELF)


@router.get("/schema/{username}/namespaces")
async def list_user_namespaces(username: str, platform: PlatformDep, principal: PrincipalDep) -> list:
    listed = await in_thread(all_pages, platform.namespaces.list, principal, owner=username)
    return [{"name": v["name"], "owner": v["owner"], "visibility": visibility(v), "description": v["description"],
             "datasets": v["datasets"], "access": v["access"], "createdAt": v["created_at"]} for v in listed]


@router.get("/schema/{username}/{namespace}/datasets")
async def list_namespace_datasets(username: str, namespace: str, platform: PlatformDep,
                                  principal: PrincipalDep) -> list:
    return await in_thread(_schema, platform, principal, namespace, username)


# -- ingestions --------------------------------------------------------------------------------
def _ingestions(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
                limit: int) -> list[dict[str, Any]]:
    check_owner(platform, principal, username, namespace)
    return [ingestion_record(i) for i in platform.ingestions.list(principal, namespace, dataset, limit=limit)]


@router.get("/data/{username}/{namespace}/{dataset}/ingest/attempts")
async def list_ingestions(username: str, namespace: str, dataset: str, platform: PlatformDep,
                          principal: PrincipalDep, pageSize: int = 25) -> dict:  # noqa: N803 (the wire's name)
    limit = min(max(pageSize, 1), 100)
    records = await in_thread(_ingestions, platform, principal, username, namespace, dataset, limit)
    return {"data": records, "metadata": {"pageSize": limit}}


@router.post("/ingestionTracking/{ingestion_id}/retry", status_code=201)
async def retry_ingestion(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    retried = await in_thread(platform.ingestions.retry, principal, runyard_id(ingestion_id))
    return ingestion_record(retried)


@router.post("/ingestionTracking/{ingestion_id}/seen", status_code=204)
async def mark_ingestion_seen(ingestion_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.ingestions.seen, principal, runyard_id(ingestion_id))
    return Response(status_code=204)


# -- multipart uploads -------------------------------------------------------------------------
def _prepare(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
             body: PrepareBody, base_url: str) -> dict[str, Any]:
    namespace_of(platform, principal, username, namespace)  # fail before any byte is sent
    part_size = max(PART_SIZE, -(-body.size // MAX_PARTS))
    return platform.uploads.create(principal, filename=body.filename, size=body.size, part_size=part_size,
                                   base_url=base_url, target={"namespace": namespace, "dataset": dataset})


@router.post("/upload/multipart/{username}/{namespace}/{dataset}/prepare")
async def prepare_multipart_upload(username: str, namespace: str, dataset: str, body: PrepareBody, request: Request,
                                   platform: PlatformDep, principal: PrincipalDep) -> dict:
    # The part URLs are runyard's own signed upload URLs (under /api/v1), so the server's root.
    upload = await in_thread(_prepare, platform, principal, username, namespace, dataset, body,
                             str(request.base_url))
    return {"uploadId": upload["id"], "key": upload["key"], "partSize": upload["part_size"],
            "presignedUrls": [{"url": p["url"], "size": p["size"], "partNumber": p["part_number"]}
                              for p in sorted(upload["parts"], key=lambda p: p["part_number"])],
            "expiresAt": upload.get("expires_at")}


def _finish(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
            body: FinishBody) -> dict[str, Any]:
    check_owner(platform, principal, username, namespace)
    fields = definitions(body.schema_definition)
    if body.data_description is not None or fields is not None:
        try:  # the definitions travel with the dataset, which may not exist yet
            platform.datasets.create(principal, namespace, name=dataset, description=body.data_description or "",
                                     field_definitions=fields)
        except Conflict:
            platform.datasets.update(principal, namespace, dataset, description=body.data_description,
                                     field_definitions=fields)
    # S3 answers ETags quoted and clients pass them back as they came.
    parts = [{"part_number": p.part_number, "etag": p.etag.strip('"')} for p in body.parts]
    options: dict[str, Any] = {}
    resolution = entity_resolution_of(body.link, None)
    if resolution:
        options["entity_resolution"] = resolution
    if body.infer is not None:  # the file's rows through the steps (model steps on the worker)
        derive, pipeline = pipeline_of(body.infer, fields)
        if derive:
            raise ValidationFailed("`rows` steps (ProcessStructured) read JSON rows given to ingest; a file's rows "
                                   "are structured already: leave the step out", code="invalid_pipeline",
                                   details={"field": "infer"})
        if pipeline:
            options["pipeline"] = pipeline
    return platform.uploads.complete(principal, body.upload_id, key=body.key, parts=parts, namespace=namespace,
                                     dataset=dataset, name=body.name, create=True, options=options or None)


@router.post("/upload/multipart/{username}/{namespace}/{dataset}/finish")
async def finish_multipart_upload(username: str, namespace: str, dataset: str, body: FinishBody,
                                  platform: PlatformDep, principal: PrincipalDep) -> dict:
    ingestion = await in_thread(_finish, platform, principal, username, namespace, dataset, body)
    record = ingestion_record(ingestion)
    return {**record, "ingestionId": record["id"]}


@router.post("/upload/multipart/{username}/{namespace}/{dataset}/abort", status_code=204)
async def abort_multipart_upload(username: str, namespace: str, dataset: str, body: AbortBody,
                                 platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(_on_dataset, platform, principal, username, namespace,
                    lambda p, ns: platform.uploads.abort(p, body.upload_id))
    return Response(status_code=204)


# -- query -------------------------------------------------------------------------------------
def _query(platform: Platform, principal: Principal, body: QueryBody) -> dict[str, Any]:
    namespace, dataset, text = body.namespace or None, body.dataset or None, body.query.strip()
    question = (body.natural_language_query or "").strip()
    ontology = _ONTOLOGY_QUERY.match(text)
    if ontology and not question:  # what the client sends for query_data() without a query: the whole dataset
        namespace, dataset, text = ontology.group(1) or namespace, ontology.group(2), "*"
    if not text and not question:
        raise ValidationFailed('query is "*" (every row of the dataset) or SQL', details={"field": "query"})
    if namespace is not None:
        check_owner(platform, principal, body.username or SELF, namespace)
    original, trace = body.query, None
    if question:  # the model writes one SQL query over the datasets this key can read (read-only guard)
        text, trace = platform.llm_features.question_to_sql(principal, question, namespace=namespace,
                                                            dataset=dataset, provider=body.provider,
                                                            model=body.model)
        original, dataset = question, None  # the model names its tables: the SQL is not scoped to one
    rows: list[dict[str, Any]] = []
    cursor = None
    columns: list[Any] = []
    while True:
        page = platform.queries.run(principal, query=text, namespace=namespace, dataset=dataset,
                                    include_metadata=True, format="json", limit=QUERY_PAGE_ROWS, cursor=cursor)
        columns = columns or page.get("columns") or []
        rows += page.get("rows", [])
        cursor = page.get("next_cursor")
        if len(rows) > MAX_QUERY_ROWS:
            raise ResultTooLarge(f"the result has more than {MAX_QUERY_ROWS} rows, more than this API answers at "
                                 "once: narrow it (WHERE, LIMIT), or page it with runyard's POST /api/v1/query",
                                 details={"max_rows": MAX_QUERY_ROWS})
        if cursor is None:
            break
    starting = f"{namespace}.{dataset}" if dataset else None
    out: dict[str, Any] = {
        "data": rows, "resultType": "Rows",
        "metadata": {"count": len(rows), "executedQuery": text, "originalQuery": original,
                     "startingDataset": starting, "finalDataset": starting, "columns": columns}}
    if trace is not None:
        out["metadata"]["naturalLanguage"] = True
        out["trace"] = [trace]
    if body.explain_requested:  # runyard explains in a run of its own (DuckDB's plan, no rows)
        out["explain"] = platform.queries.run(principal, query=text, namespace=namespace, dataset=dataset,
                                              explain=True)["explain"]
    return out


@router.post("/query")
async def query_data(body: QueryBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(_query, platform, principal, body)


# -- links (services.links) ---------------------------------------------------------------------
MATCH_TYPES = ("ExactMatch", "GeoMatch")
OPTION_NAMES = {"ExactMatch": {"minDistinct": "min_distinct", "minVariation": "min_variation"},
                "GeoMatch": {"distance": "distance", "distanceUnit": "unit"}}
WIRE_OPTION_NAMES = {t: {v: k for k, v in names.items()} for t, names in OPTION_NAMES.items()}
UNITS = {"km": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
         "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
         "mi": "mi", "mile": "mi", "miles": "mi"}


def match_type_of(given: str, field: str = "matchType") -> str:
    if given not in MATCH_TYPES:
        raise ValidationFailed(f"{field} is ExactMatch or GeoMatch, not {given!r}", code="invalid_link_options",
                               details={"field": field})
    return given


def link_options(match_type: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The wire's options in runyard's names (runyard's own names are taken as they are; what
    neither knows is passed on, for runyard to refuse by name)."""
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if value is None:  # the client omits an unset field; 1.x sent null
            continue
        name = OPTION_NAMES[match_type].get(key, key)
        if name == "unit" and isinstance(value, str):
            value = UNITS.get(value.strip().lower(), value)
        out[name] = value
    return out


def wire_options(match_type: str, options: dict[str, Any] | None) -> dict[str, Any]:
    names = WIRE_OPTION_NAMES.get(match_type, {})
    return {names.get(k, k): v for k, v in (options or {}).items()}


def link_end(platform: Platform, principal: Principal, ref: ColumnRef, match_type: str) -> dict[str, Any]:
    """A column of the wire as runyard's link end; a GeoMatch end may name ``lat,lon``."""
    check_owner(platform, principal, ref.username, ref.namespace)
    column, lon = ref.column_name, None
    if match_type == "GeoMatch" and "," in column:
        column, _, lon = (part.strip() for part in column.partition(","))
    end: dict[str, Any] = {"namespace": ref.namespace, "dataset": ref.dataset, "column": column}
    if lon:
        end["lon_column"] = lon
    return end


class Owners:
    """The owners' usernames of namespaces, looked up once each (``self`` when out of sight)."""

    def __init__(self, platform: Platform, principal: Principal) -> None:
        self.platform, self.principal = platform, principal
        self.known: dict[str, str] = {}

    def __call__(self, namespace: str) -> str:
        if namespace not in self.known:
            try:
                self.known[namespace] = self.platform.namespaces.get(self.principal, namespace).get("owner") or SELF
            except NotFound:
                self.known[namespace] = SELF
        return self.known[namespace]


def column_ref(end: dict[str, Any], owner: Callable[[str], str]) -> str:
    column = end["column"] + (f",{end['lon_column']}" if end.get("lon_column") else "")
    return f"ri.{owner(end['namespace'])}.{end['namespace']}.{end['dataset']}.{column}"


def api_link(view: dict[str, Any], owner: Callable[[str], str], status: str | None = None) -> dict[str, Any]:
    """A runyard link (or preview entry) as an ``ApiLink``, runyard's fields beside it. ``hits``
    is the matched row pairs; a suggestion, whose pairs are not computed, counts its shared values."""
    evidence = view.get("evidence") or {}
    hits = view.get("pair_count")
    if hits is None:
        hits = evidence.get("overlap") or 0
    return {"origin": column_ref(view["from"], owner), "destination": column_ref(view["to"], owner),
            "matchType": view["match_type"], "hits": int(hits), "id": view.get("id"),
            "status": status or view.get("status"), "score": view.get("score"),
            "options": wire_options(view["match_type"], view.get("options")), "evidence": evidence,
            "stale": bool(view.get("stale", False))}


def link_selection(config: dict[str, Any] | None) -> dict[str, set[str] | None] | None:
    """The client's ``link`` config on preview/rebuild as a selection: the match types it names,
    and each one's ``targetColumns``. runyard scores suggestions with its own thresholds, so
    thresholds here are refused rather than silently dropped."""
    if not config:
        return None
    selection: dict[str, set[str] | None] = {}
    for match_type, settings in config.items():
        match_type_of(match_type, "link")
        settings = settings or {}
        if not isinstance(settings, dict):
            raise ValidationFailed(f"link.{match_type} is an object", details={"field": f"link.{match_type}"})
        thresholds = sorted(k for k, v in settings.items() if k != "targetColumns" and v is not None)
        if thresholds:
            raise NotServed(f"thresholds on preview_links/rebuild_links ({', '.join(thresholds)}) are not served: "
                            "runyard scores suggestions with its own; give them to one link with add_link",
                            details={"feature": "link thresholds", "options": thresholds})
        columns = settings.get("targetColumns")
        selection[match_type] = {str(c) for c in columns} if columns else None
    return selection


def selected(view: dict[str, Any], namespace: str, dataset: str,
             selection: dict[str, set[str] | None] | None) -> bool:
    if selection is None:
        return True
    if view["match_type"] not in selection:
        return False
    columns = selection[view["match_type"]]
    if columns is None:
        return True
    return any(end["namespace"] == namespace and end["dataset"] == dataset
               and ({end["column"], end.get("lon_column")} & columns) for end in (view["from"], view["to"]))


def _load_links(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
                selection: dict[str, set[str] | None] | None = None) -> list[dict[str, Any]]:
    check_owner(platform, principal, username, namespace)
    owner = Owners(platform, principal)
    return [api_link(v, owner) for v in platform.links.list(principal, namespace, dataset)["items"]
            if selected(v, namespace, dataset, selection)]


@router.get("/links/{username}/{namespace}/{dataset}")
async def load_links(username: str, namespace: str, dataset: str, platform: PlatformDep,
                     principal: PrincipalDep) -> list:
    return await in_thread(_load_links, platform, principal, username, namespace, dataset)


def _rebuild_links(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
                   body: LinksBody) -> list[dict[str, Any]]:
    selection = link_selection(body.link)
    check_owner(platform, principal, username, namespace)
    platform.links.recalculate(principal, namespace, dataset)
    return _load_links(platform, principal, SELF, namespace, dataset, selection)


@router.post("/links/{username}/{namespace}/{dataset}")
async def rebuild_links(username: str, namespace: str, dataset: str, body: LinksBody, platform: PlatformDep,
                        principal: PrincipalDep) -> list:
    """Recalculates the dataset's active links and suggestions over its stored snapshot (the
    rows the client sends are not what runyard links), then answers its links."""
    return await in_thread(_rebuild_links, platform, principal, username, namespace, dataset, body)


def _preview_links(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
                   body: LinksBody) -> list[dict[str, Any]]:
    selection = link_selection(body.link)
    check_owner(platform, principal, username, namespace)
    preview = platform.links.preview(principal, {"namespace": namespace, "dataset": dataset})
    owner = Owners(platform, principal)
    out = [api_link(v, owner, "active") for v in preview["links"] if selected(v, namespace, dataset, selection)]
    out += [api_link(v, owner, "suggested") for v in preview["suggestions"]
            if selected(v, namespace, dataset, selection)]
    return out


@router.post("/links/preview/{username}/{namespace}/{dataset}")
async def preview_links(username: str, namespace: str, dataset: str, body: LinksBody, platform: PlatformDep,
                        principal: PrincipalDep) -> list:
    """What a rebuild would produce, nothing saved: the active links' pairs counted afresh and
    the suggestions scored afresh."""
    return await in_thread(_preview_links, platform, principal, username, namespace, dataset, body)


def _add_link(platform: Platform, principal: Principal, body: AddLinkBody) -> tuple[dict[str, Any], bool]:
    match_type = match_type_of(body.match_type)
    spec = {"from": link_end(platform, principal, body.from_, match_type),
            "to": link_end(platform, principal, body.to, match_type),
            "match_type": match_type, "options": link_options(match_type, body.options)}
    view, created = platform.links.create(principal, spec)
    return api_link(view, Owners(platform, principal)), created


@router.post("/links/add", status_code=201)
async def add_link(body: AddLinkBody, platform: PlatformDep, principal: PrincipalDep) -> Any:
    """201 with the new link; 200 with the existing one when the same link (either way round) exists."""
    link, created = await in_thread(_add_link, platform, principal, body)
    return link if created else JSON(link, status_code=200)


# -- the key's user, tokens, usage --------------------------------------------------------------
@router.get("/user/me")
async def current_user(platform: PlatformDep, principal: PrincipalDep) -> dict:
    me = await in_thread(platform.users.me, principal)
    return {"id": me.get("id") or principal.user_id, "username": me.get("username"),
            "name": me.get("display_name"), "email": me.get("email"), "role": me.get("role"),
            "tokenId": principal.token_id, "restricted": principal.restricted}


def user_token(view: dict[str, Any]) -> dict[str, Any]:
    return {"id": view["id"], "name": view["name"], "created_at": view["created_at"],
            "expires_at": view.get("expires_at") or NEVER, "last_used_at": view.get("last_used_at"),
            "token": view.get("key"), "role": view.get("role"), "prefix": view.get("prefix")}


@router.get("/user/tokens")
async def list_tokens(platform: PlatformDep, principal: PrincipalDep) -> list:
    listed = await in_thread(all_pages, platform.tokens.list, principal)
    return [user_token(v) for v in listed]


def _grant_access(platform: Platform, principal: Principal, namespace: str, dataset: str | None) -> str:
    """A DataLinks restriction lets the token read and write what it names: write, unless the
    calling key is itself restricted to reading it (a key never mints more than it holds)."""
    if not principal.grants:
        return "write"
    mine = platform.tokens.get(principal, principal.token_id)["restrictions"]["grants"]
    reaching = [g for g in mine if g["namespace"] == namespace and g.get("dataset") in (None, dataset)]
    return "write" if any(g["access"] == "write" for g in reaching) or not reaching else "read"


def _add_token(platform: Platform, principal: Principal, body: TokenBody) -> dict[str, Any]:
    grants = []
    for entry in body.access_restricted_to or []:
        if entry.username != SELF and entry.username != principal.username:
            try:
                namespace_of(platform, principal, entry.username, entry.namespace)
            except NotFound:
                raise ValidationFailed(f"no such namespace: {entry.username}/{entry.namespace}",
                                       code="namespace_not_found",
                                       details={"field": "accessRestrictedTo"}) from None
        grant: dict[str, Any] = {"namespace": entry.namespace,
                                 "access": _grant_access(platform, principal, entry.namespace, entry.dataset)}
        if entry.dataset:
            grant["dataset"] = entry.dataset
        grants.append(grant)
    expires_at = None
    if body.expires_at:
        try:
            expires_at = parse_rfc3339(body.expires_at)
        except ValueError:
            raise ValidationFailed("expires_at is an ISO 8601 timestamp", details={"field": "expires_at"}) from None
    restrictions = {"tools": [], "grants": grants} if grants else None
    return platform.tokens.create(principal, name=body.name, role=principal.role, expires_at=expires_at,
                                  restrictions=restrictions)


@router.post("/user/token", status_code=201)
async def add_token(body: TokenBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return user_token(await in_thread(_add_token, platform, principal, body))


@router.delete("/user/token/{token_id}", status_code=204)
async def delete_token(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.tokens.delete, principal, token_id)
    return Response(status_code=204)


def _token_permissions(platform: Platform, principal: Principal, token_id: str) -> dict[str, Any]:
    view = platform.tokens.get(principal, token_id)
    restrictions = view.get("restrictions") or {}
    owners: dict[str, str] = {}
    entries = []
    for grant in restrictions.get("grants") or []:
        ns = grant["namespace"]
        if ns not in owners:
            try:
                owners[ns] = platform.namespaces.get(principal, ns).get("owner") or SELF
            except NotFound:  # gone, or out of the caller's sight
                owners[ns] = SELF
        entries.append({"username": owners[ns], "namespace": ns, "dataset": grant.get("dataset"),
                        "access": grant.get("access")})
    return {"restricted": bool(entries or restrictions.get("tools")), "permissions": entries,
            "tools": restrictions.get("tools") or []}


@router.get("/user/tokens/{token_id}/permissions")
async def list_token_permissions(token_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(_token_permissions, platform, principal, token_id)


def _instant(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise ValidationFailed(f"{field} is an ISO 8601 timestamp", details={"field": field}) from None


@router.get("/user/usage/by-day")
async def usage_by_day(platform: PlatformDep, principal: PrincipalDep, onOrAfter: str | None = None,  # noqa: N803
                       before: str | None = None, timeZoneForAggregation: str = "UTC") -> dict:  # noqa: N803
    days = await in_thread(platform.usage.daily, principal, start=_instant(onOrAfter, "onOrAfter"),
                           end=_instant(before, "before"), timezone=timeZoneForAggregation)
    by_day: dict[str, dict[str, float]] = {}
    for entry in days:
        by_day.setdefault(entry["day"], {})[entry["kind"]] = entry["quantity"]
    # runyard meters its own work, not LLM tokens: those are 0, its measures ride along.
    return {"data": [{"date": day, "tokensUsed": 0, "costUSD": 0.0, "usage": usage}
                     for day, usage in sorted(by_day.items())],
            "meta": {"timeZoneForAggregation": timeZoneForAggregation}}


@router.get("/user/usage/history")
async def usage_history(platform: PlatformDep, principal: PrincipalDep, onOrAfter: str | None = None,  # noqa: N803
                        before: str | None = None, pageSize: int = 25,  # noqa: N803
                        pageCursor: str | None = None) -> dict:  # noqa: N803
    cursor = None
    if pageCursor:
        try:
            cursor = json.loads(pageCursor).get("lastObservationId")
        except (ValueError, AttributeError):
            raise ValidationFailed("pageCursor is the meta.pageCursor of a previous page",
                                   code="invalid_cursor") from None
    page = await in_thread(platform.usage.events, principal, start=_instant(onOrAfter, "onOrAfter"),
                           end=_instant(before, "before"), cursor=cursor, limit=min(max(pageSize, 1), 1000))
    data = [{"timestamp": e["created_at"], "tokensUsed": 0, "costUSD": 0.0, "kind": e["kind"],
             "quantity": e["quantity"], "refId": e.get("ref_id")} for e in page.items]
    next_cursor = None
    if page.next_cursor and data:
        next_cursor = {"lastStartTime": data[-1]["timestamp"], "lastObservationId": page.next_cursor}
    return {"data": data, "meta": {"pageSize": pageSize, "pageCursor": next_cursor}}


# -- namespace shares (runyard's members) -------------------------------------------------------
ROLE_ACCESS = {"viewer": "read", "editor": "write"}


def _access_of(role: str) -> str:
    if role not in ROLE_ACCESS:
        raise ValidationFailed("role is viewer or editor", details={"field": "role"})
    return ROLE_ACCESS[role]


@router.get("/permissions/namespaces/{username}/{namespace}/shares")
async def list_namespace_shares(username: str, namespace: str, platform: PlatformDep,
                                principal: PrincipalDep) -> list:
    members = await in_thread(_on_dataset, platform, principal, username, namespace, platform.namespaces.members)
    return [{"username": m["username"], "role": "editor" if m["access"] == "write" else "viewer"} for m in members]


@router.post("/permissions/namespaces/{username}/{namespace}/shares", status_code=204)
async def share_namespace(username: str, namespace: str, body: ShareBody, platform: PlatformDep,
                          principal: PrincipalDep) -> Response:
    access = _access_of(body.role)
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.namespaces.set_member,
                    username=body.username, access=access)
    return Response(status_code=204)


@router.delete("/permissions/namespaces/{username}/{namespace}/shares", status_code=204)
async def revoke_namespace_share(username: str, namespace: str, body: ShareBody, platform: PlatformDep,
                                 principal: PrincipalDep) -> Response:
    _access_of(body.role)
    await in_thread(_on_dataset, platform, principal, username, namespace, platform.namespaces.remove_member,
                    body.username)
    return Response(status_code=204)


# -- natural-language answers (services.llm_features.ask) --------------------------------------
class StageModel(Body):
    model: str | None = None
    provider: str | None = None


class AutoRagBody(Body):
    username: str = SELF
    namespace: str | None = None
    query: str = Field(min_length=1, max_length=10_000)
    helper_prompt: str | None = Field(default=None, alias="helperPrompt", max_length=10_000)
    model: str | None = None
    provider: str | None = None
    models: dict[str, StageModel | None] | None = None
    conversation_id: str | None = Field(default=None, alias="conversationId")
    web_search: bool | None = Field(default=None, alias="webSearch")
    caller_context: Any = Field(default=None, alias="callerContext")


def _ask_events(platform: Platform, principal: Principal, body: AutoRagBody) -> Any:
    """runyard's ask events for the client's request; what runyard cannot honour is refused."""
    if body.conversation_id is not None:
        raise not_served("conversations (`conversationId`)")
    if body.caller_context is not None:
        raise not_served("caller context (`callerContext`)")
    stages = {k: v for k, v in (body.models or {}).items() if v is not None and (v.model or v.provider)}
    if stages:  # one model answers every stage in runyard
        raise NotServed("per-stage models (`models`) are not served: runyard's ask uses one provider and "
                        "model for every stage; pass `model`/`provider`", details={"feature": "models"})
    namespace = body.namespace or None
    if namespace is not None:
        check_owner(platform, principal, body.username or SELF, namespace)
    return platform.llm_features.ask(principal, body.query, namespace=namespace, helper_prompt=body.helper_prompt,
                                     provider=body.provider, model=body.model)


def wire_step(step: dict[str, Any]) -> dict[str, Any]:
    """A runyard ``step`` (1-based ``index``, ``sql``, ``rows`` or ``error``) as the client's step:
    zero-based ``index``, ``instruction``, ``query``, ``reasoning``, ``data``; runyard's fields beside."""
    error = step.get("error")
    reasoning = f"refused: {error.get('message')}" if isinstance(error, dict) else ""
    return {**step, "index": int(step.get("index", 1)) - 1, "instruction": "run_sql",
            "query": step.get("sql") or "", "reasoning": reasoning, "data": step.get("rows") or []}


def wire_event(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = event.pop("event")
    if kind == "plan":  # runyard's model plans as it goes: no steps known up front
        datasets = ", ".join(event.get("datasets") or []) or "none"
        return kind, {**event, "steps": [], "reasoning": f"answering with read-only SQL over: {datasets}"}
    if kind == "step":
        return kind, wire_step(event)
    if kind == "answer":
        return kind, {**event, "response": event.get("answer", "")}
    return kind, event  # error: code, message, status


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@router.post("/query/ask")
async def ask(body: AutoRagBody, platform: PlatformDep, principal: PrincipalDep) -> Response:
    events = await in_thread(_ask_events, platform, principal, body)
    first = await in_thread(next, events)  # refusals (no provider, an unseen namespace) answer as errors

    async def stream() -> AsyncIterator[bytes]:
        yield _sse(*wire_event(first))
        while (event := await in_thread(next, events, None)) is not None:
            yield _sse(*wire_event(event))

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _autorag(platform: Platform, principal: Principal, body: AutoRagBody) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for event in _ask_events(platform, principal, body):
        kind = event.pop("event")
        if kind == "step":
            steps.append(wire_step(event))
        elif kind == "answer":
            return {"response": event["answer"], "steps": steps, "trace": event["trace"]}
        elif kind == "error":
            raise DomainError(event["message"], code=event["code"], status=event["status"],
                              details={"steps": steps} if steps else None)
    raise DomainError("the model gave no answer", code="llm_invalid_response", status=502)


@router.post("/query/autorag")
async def autorag(body: AutoRagBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(_autorag, platform, principal, body)


# -- the ontology (services.ontology) ------------------------------------------------------------
class CurateBody(Body):
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str | None = Field(default=None, max_length=64)
    model: str | None = None
    provider: str | None = None
    activate: bool = False


def _get_ontology(platform: Platform, principal: Principal, username: str, namespace: str,
                  dataset: str) -> list[dict[str, Any]]:
    check_owner(platform, principal, username, namespace)
    owner = Owners(platform, principal)  # a dataset out of sight is 404, as on runyard's API
    return [api_link(v, owner) for v in platform.links.list(principal, namespace, dataset, "active")["items"]]


@router.get("/ontology/{username}/{namespace}/{dataset}")
async def get_ontology(username: str, namespace: str, dataset: str, platform: PlatformDep,
                       principal: PrincipalDep) -> list:
    return await in_thread(_get_ontology, platform, principal, username, namespace, dataset)


def _curate(platform: Platform, principal: Principal, body: CurateBody) -> dict[str, Any]:
    out = OntologyService(platform.links, platform.llm).curate(principal, body.namespace, body.dataset,
                                                               activate=body.activate, provider=body.provider,
                                                               model=body.model)
    owner = Owners(platform, principal)
    result: dict[str, Any] = {"datasetsProcessed": out["datasets_processed"], "totalSelected": out["total_selected"],
                              "decisions": [{"link": api_link(d["link"], owner), "decision": d["decision"],
                                             "reason": d["reason"], "reviewedBy": d.get("reviewed_by")}
                                            for d in out["curated_links"]],
                              "modelReview": out.get("model_review")}
    if not body.activate:  # as the reference: the selected links, only when not activated
        result["curatedLinks"] = [api_link(d["link"], owner) for d in out["curated_links"]
                                  if d["decision"] == "select"]
    return result


@router.post("/ontology/curate-links")
async def curate_links(body: CurateBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(_curate, platform, principal, body)


# -- inference: pipelines, descriptions, schemas (services.model_steps, services.llm_features) ------
# What the client's validate modes ask the model to check (runyard's validate step takes rules).
VALIDATE_RULES = {
    "rows": "A valid row is a plausible, internally consistent record: its values fit their fields and each other.",
    "fields": "A valid row has, in each field shown, a value that is plausible for the field's name.",
    "regex": "A valid row has, in each field shown, a value in the format the field's name implies "
             "(e.g. an email, a date, a postcode).",
}
REVERSE_GEO = ("reverseGeo is not served: reverse geocoding needs gazetteer geodata runyard does not ship, and "
               "runyard's pipelines call no network geocoder (a model guessing places from coordinates would be "
               "wrong silently); give place names as data, or use a GeoMatch link")


def _step_refused(index: int, message: str) -> ValidationFailed:
    return ValidationFailed(f"infer step {index}: {message}", code="invalid_pipeline",
                            details={"field": "infer.steps", "step": index})


def pipeline_of(infer: Any, schema_definition: dict[str, str] | None = None
                ) -> tuple[list[str], list[dict[str, Any]]]:
    """The client's ``infer`` (``{"steps": [...]}`` from its ``Pipeline``) as runyard's pipeline:
    ``rows`` (ProcessStructured) first — the fields whose structured values become the row —
    then ``table`` → ``extract`` from the ``deriveFrom`` text into the schema definition's
    fields, ``normalise`` → ``extract`` of every field onto the ``targetCols`` (the row becomes
    them), ``validate`` → ``validate`` with rules for its mode; ``reverseGeo`` answers 501.
    Its ``provider`` names DataLinks' vendors (openai, ollama): runyard calls the workspace's
    provider, with the step's ``model`` when given."""
    steps = infer.get("steps") if isinstance(infer, dict) else infer
    if not isinstance(steps, list):
        raise ValidationFailed("infer: an object with a list of steps", code="invalid_pipeline",
                               details={"field": "infer"})
    derive_rows: list[str] = []
    pipeline: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "reverseGeo":
            raise NotServed(REVERSE_GEO, details={"feature": "reverseGeo", "step": i})
        if kind not in ("rows", "table", "normalise", "validate"):
            raise _step_refused(i, f"unknown step type {kind!r} (rows, table, normalise, validate, reverseGeo)")
        model = {"model": step["model"]} if isinstance(step.get("model"), str) and step["model"] else {}
        helper = step.get("helperPrompt") or None
        if kind == "rows":
            if pipeline:
                raise _step_refused(i, "a rows step comes before the other steps")
            if not isinstance(step.get("deriveFrom"), str) or not step["deriveFrom"]:
                raise _step_refused(i, "rows takes deriveFrom, a field name")
            derive_rows.append(step["deriveFrom"])
        elif kind == "table":
            if not isinstance(step.get("deriveFrom"), str) or not step["deriveFrom"]:
                raise _step_refused(i, "table takes deriveFrom, the field holding the text")
            pipeline.append({"extract": {"from": [step["deriveFrom"]], "fields": schema_definition,
                                         "instructions": helper, **model}})
        elif kind == "normalise":
            target = step.get("targetCols")
            if not isinstance(target, dict) or not target:
                raise _step_refused(i, "normalise takes targetCols, the columns wanted (name: description)")
            mode = step.get("mode") or "all-in-one"
            if mode == "embeddings":
                raise NotServed("normalise in embeddings mode is not served (runyard has no embedding model); "
                                "use all-in-one or field-by-field", details={"feature": "normalise", "step": i})
            pipeline.append({"extract": {"fields": {str(k): str(v or "") for k, v in target.items()},
                                         "replace": True, **model,
                                         "instructions": "\n".join(x for x in (
                                             "Map each row's fields onto these target columns, keeping the values.",
                                             helper) if x)}})
        else:
            mode = step.get("mode") or "rows"
            if mode not in VALIDATE_RULES:
                raise _step_refused(i, f"validate's mode is one of {', '.join(VALIDATE_RULES)}")
            columns = step.get("columns") or None
            pipeline.append({"validate": {"columns": columns, "instructions": VALIDATE_RULES[mode], **model}})
    return derive_rows, pipeline


def structured_rows(rows: list[Any], fields: list[str]) -> list[Any]:
    """``rows`` steps: a field holding an object (or a JSON object as text) gives the row its
    keys; one holding a list of objects gives a row per object. Other rows stay as they are."""
    for name in fields:
        out: list[Any] = []
        for row in rows:
            value = row.get(name) if isinstance(row, dict) else None
            if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            if isinstance(value, dict):
                out.append({**{k: v for k, v in row.items() if k != name}, **value})
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                rest = {k: v for k, v in row.items() if k != name}
                out.extend({**rest, **v} for v in value)
            else:
                out.append(row)
        rows = out
    return rows


def guidance_of(data_description: str | None, schema_definition: Definitions,
                additional_instructions: str | None) -> Any:
    from runyard.services.model_steps import Guidance

    return Guidance(data_description=data_description or None, schema_definition=definitions(schema_definition),
                    additional_instructions=additional_instructions or None)


class InferPreviewBody(Body):
    data: list[dict[str, Any]] = Field(max_length=10_000)
    infer: Any = None
    data_description: str | None = Field(default=None, alias="dataDescription", max_length=10_000)
    schema_definition: Definitions = Field(default=None, alias="schemaDefinition")
    additional_instructions: str | None = Field(default=None, alias="additionalInstructions", max_length=20_000)


class CurrentValueBody(Body):
    description: str | None = Field(default=None, max_length=10_000)
    schema_: dict[str, str] | None = Field(default=None, alias="schema")


class InferSampleBody(Body):
    sample: list[dict[str, Any]] = Field(max_length=10_000)
    model: str | None = None
    provider: str | None = None  # DataLinks' vendor name: runyard calls the workspace's provider
    current_value: CurrentValueBody | None = Field(default=None, alias="currentValue")


def _infer_preview(platform: Platform, principal: Principal, body: InferPreviewBody) -> list[dict[str, Any]]:
    guidance = guidance_of(body.data_description, body.schema_definition, body.additional_instructions)
    if body.infer is None:
        derive, pipeline = [], []
    else:
        derive, pipeline = pipeline_of(body.infer, guidance.schema_definition)
    rows = structured_rows(list(body.data), derive)
    found = platform.uploads.preview(principal, rows=rows, options={"pipeline": pipeline} if pipeline else None,
                                     limit=len(rows) or 1, sample=max(len(rows), 1), guidance=guidance)
    return list(found["rows"])


def _ingest_inferred(platform: Platform, principal: Principal, namespace: str, dataset: str, body: IngestBody,
                     body_bytes: int) -> dict[str, Any]:
    """``ingest`` with ``infer``: the rows through runyard's pipeline (model steps guided by
    ``dataDescription``, ``schemaDefinition`` and ``additionalInstructions``). Rows a step
    rejects are left out and listed in ``failed`` (rejecting them is what ``validate`` is for);
    a model that fails every call fails the batch, nothing stored, and the client retries it.
    ``link`` resolves entities on the rows the steps leave (its ``targetColumns`` name their
    columns)."""
    guidance = guidance_of(body.data_description, body.schema_definition, body.additional_instructions)
    derive, pipeline = pipeline_of(body.infer, guidance.schema_definition)
    rows = structured_rows(list(body.data), derive)
    configs = [c for k, c in body.link.items() if k != "policy"] if isinstance(body.link, dict) else []
    if configs and not all(isinstance(c, dict) and c.get("targetColumns") for c in configs):
        raise ValidationFailed("link: with inference steps, name the targetColumns (the columns the steps leave)",
                               code="invalid_entity_resolution", details={"field": "link"})
    result = platform.datasets.ingest_rows(principal, namespace, dataset, rows, create=False, on_error="skip",
                                           body_bytes=body_bytes, pipeline=pipeline or None, guidance=guidance,
                                           entity_resolution=entity_resolution_of(body.link, rows),
                                           curate=bool(body.curate))
    if body.data_description is not None or body.schema_definition is not None:
        platform.datasets.update(principal, namespace, dataset, description=body.data_description,
                                 field_definitions=definitions(body.schema_definition))
    return {"indexed": result["ingested"], "ingestionId": wire_id(result["ingestion_id"]),
            "snapshot": result.get("snapshot"), "failed": result["failed"],
            **({"modelCalls": result["model_calls"]} if result.get("model_calls") else {}),
            **({"entityResolution": result["entity_resolution"]} if result.get("entity_resolution") else {})}


@router.post("/infer/preview")
async def infer_preview(body: InferPreviewBody, platform: PlatformDep, principal: PrincipalDep) -> list:
    """preview_ingest: the rows as the inference steps leave them, nothing saved (rows a step
    rejects are left out)."""
    return await in_thread(_infer_preview, platform, principal, body)


@router.post("/infer/description")
async def infer_description(body: InferSampleBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    current = body.current_value or CurrentValueBody()
    out = await in_thread(platform.llm_features.describe_sample, principal, body.sample,
                          current_description=current.description, current_schema=current.schema_,
                          model=body.model)
    return {"description": out["data_description"], "dataDescription": out["data_description"],
            "fieldDefinition": out["field_definitions"], "schema": out["field_definitions"], "source": out["source"]}


@router.post("/infer/schema")
async def infer_schema(body: InferSampleBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    current = body.current_value or CurrentValueBody()
    out = await in_thread(platform.llm_features.infer_sample_schema, principal, body.sample,
                          current_schema=current.schema_, model=body.model)
    return {"schema": out["schema"], "source": out["source"]}


# -- cleaning (services.cleaning) and saving the ontology (services.ontology) ------------------------
class RequestCleaningBody(Body):
    prompts: list[str]
    output_namespace: str = Field(alias="outputNamespace", min_length=1, max_length=64)
    output_dataset_name: str = Field(alias="outputDatasetName", min_length=1, max_length=64)
    model: str | None = None
    provider: str | None = None


def _request_cleaning(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
                      body: RequestCleaningBody) -> dict[str, Any]:
    check_owner(platform, principal, username, namespace)
    task = platform.cleaning.submit(principal, namespace, dataset, prompts=body.prompts,
                                    output_namespace=body.output_namespace, output_dataset=body.output_dataset_name,
                                    provider=body.provider, model=body.model)
    return {"cleaningTaskId": wire_id(task["id"]), "runyardId": task["id"], "status": task["status"]}


@router.post("/agents/{username}/{namespace}/{dataset}/requestCleaning", status_code=202)
async def request_cleaning(username: str, namespace: str, dataset: str, body: RequestCleaningBody,
                           platform: PlatformDep, principal: PrincipalDep) -> dict:
    """A runyard cleaning task: its id travels as the UUID of the same 128 bits."""
    return await in_thread(_request_cleaning, platform, principal, username, namespace, dataset, body)


def cleaning_code(task: dict[str, Any]) -> list[dict[str, Any]]:
    """A task's code as the client's code files: the one SQL transform (none until the model
    has proposed it), runyard's task status beside it."""
    if not task.get("sql"):
        return []
    header = (f"-- runyard cleaning task {task['id']} ({task['status']}): "
              f"{task['source']['namespace']}.{task['source']['dataset']} -> "
              f"{task['output']['namespace']}.{task['output']['dataset']}\n")
    return [{"name": "clean.sql", "content": header + task["sql"] + "\n", "status": task["status"],
             "error": task.get("error")}]


@router.get("/agents/cleaning/{cleaning_task_id}/code")
async def get_cleaning_code(cleaning_task_id: str, platform: PlatformDep, principal: PrincipalDep) -> list:
    task = await in_thread(platform.cleaning.get, principal, runyard_id(cleaning_task_id, "cln"))
    return cleaning_code(task)


class OntologyBody(Body):
    add: list[dict[str, Any]] | None = None
    remove: list[dict[str, Any]] | None = None


def wire_column(ref: Any, field: str) -> ColumnRef:
    """``ri.<owner>.<namespace>.<dataset>.<column>`` as a column reference (names hold no dots;
    the column, the last part, may)."""
    parts = str(ref or "").split(".", 4)
    if len(parts) != 5 or parts[0] != "ri" or not all(parts[1:]):
        raise ValidationFailed(f"{field} reads ri.<owner>.<namespace>.<dataset>.<column>, not {ref!r}",
                               code="validation_error", details={"field": field})
    return ColumnRef(username=parts[1], namespace=parts[2], dataset=parts[3], columnName=parts[4])


def _ends_of(platform: Platform, principal: Principal, link: dict[str, Any], field: str
             ) -> tuple[str, dict[str, Any], dict[str, Any]]:
    match_type = match_type_of(str(link.get("matchType") or link.get("match_type") or "ExactMatch"),
                               f"{field}.matchType")
    return (match_type, link_end(platform, principal, wire_column(link.get("origin"), f"{field}.origin"), match_type),
            link_end(platform, principal, wire_column(link.get("destination"), f"{field}.destination"), match_type))


def _same_end(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("namespace", "dataset", "column", "lon_column"))


def _save_ontology(platform: Platform, principal: Principal, username: str, namespace: str, dataset: str,
                   body: OntologyBody) -> dict[str, Any]:
    """The client's ``save_ontology``: ``add`` links (an ``ApiLink`` from get_ontology or
    load_links, whose runyard ``id`` rides beside it, or one built from its ends) become active,
    ``remove`` ones leave the ontology (runyard's PATCH /namespaces/{ns}/ontology)."""
    check_owner(platform, principal, username, namespace)
    platform.datasets.get(principal, namespace, dataset)  # the dataset the client is configured on: 404 if unseen
    add: list[Any] = []
    for i, link in enumerate(body.add or []):
        if link.get("id"):
            add.append(str(link["id"]))
            continue
        match_type, origin, destination = _ends_of(platform, principal, link, f"add.{i}")
        add.append({"from": origin, "to": destination, "match_type": match_type,
                    "options": link_options(match_type, link.get("options"))})
    remove: list[str] = []
    current = platform.links.list(principal, namespace, dataset)["items"] if body.remove else []
    for i, link in enumerate(body.remove or []):
        if link.get("id"):
            remove.append(str(link["id"]))
            continue
        match_type, origin, destination = _ends_of(platform, principal, link, f"remove.{i}")
        found = next((v["id"] for v in current if v["match_type"] == match_type and (
            (_same_end(v["from"], origin) and _same_end(v["to"], destination))
            or (_same_end(v["from"], destination) and _same_end(v["to"], origin)))), None)
        if found is None:
            raise NotFound(f"remove.{i}: no link {link.get('origin')} -> {link.get('destination')} "
                           f"({match_type})", code="link_not_found", details={"field": f"remove.{i}"})
        remove.append(found)
    out = OntologyService(platform.links, platform.llm).update(principal, namespace, add, remove)
    owner = Owners(platform, principal)
    return {"added": [{"link": api_link(a["link"], owner), "result": a["result"]} for a in out["added"]],
            "removed": out["removed"]}


@router.post("/ontology/{username}/{namespace}/{dataset}")
async def save_ontology(username: str, namespace: str, dataset: str, body: OntologyBody, platform: PlatformDep,
                        principal: PrincipalDep) -> dict:
    return await in_thread(_save_ontology, platform, principal, username, namespace, dataset, body)


# -- not served --------------------------------------------------------------------------------
def _refusal(message: str | None, feature: str) -> Callable[..., Coroutine[Any, Any, None]]:
    async def refuse(principal: PrincipalDep) -> None:  # authenticated first: no key is 401, not 501
        if message is not None:
            raise NotServed(message, details={"feature": feature})
        raise not_served(feature)

    return refuse


_DATASET_SHARES = ("runyard shares whole namespaces, not single datasets: share the namespace "
                   "(share_namespace_access), or give a token restricted to the dataset (add_token)")
_FILE_SESSIONS = ("multi-file upload sessions (/file-upload) are not served: upload each file with "
                  "prepare_multipart_upload / finish_multipart_upload")
NOT_SERVED: list[tuple[str, str, str, str | None]] = [
    ("GET", "/query/runs/{run_id}", "agent runs (get_agent_run_status)", None),
    ("DELETE", "/query/runs/{run_id}", "agent runs (delete_agent_run)", None),
    ("POST", "/query/runs/{run_id}/resume", "agent runs (resume_agent_run)", None),
    ("POST", "/query/runs/{run_id}/feedback", "agent runs (submit_agent_run_feedback)", None),
    ("GET", "/query/conversations", "conversations (list_conversations)", None),
    ("GET", "/query/conversations/{conversation_id}", "conversations (get_conversation)", None),
    ("GET", "/a2a", "A2A agents", None),
    ("POST", "/a2a/{agent_name}", "A2A agents", None),
    ("GET", "/a2a/{agent_name}/.well-known/agent-card.json", "A2A agents", None),
    ("GET", "/permissions/datasets/{username}/{namespace}/{dataset}/shares", "dataset shares", _DATASET_SHARES),
    ("POST", "/permissions/datasets/{username}/{namespace}/{dataset}/shares", "dataset shares", _DATASET_SHARES),
    ("DELETE", "/permissions/datasets/{username}/{namespace}/{dataset}/shares", "dataset shares", _DATASET_SHARES),
    ("POST", "/file-upload/prepare", "file-upload sessions", _FILE_SESSIONS),
    ("GET", "/file-upload/{session_id}/files", "file-upload sessions", _FILE_SESSIONS),
    ("POST", "/file-upload/{session_id}/files/{file_id}/finish", "file-upload sessions", _FILE_SESSIONS),
    ("POST", "/file-upload/{session_id}/abort", "file-upload sessions", _FILE_SESSIONS),
]
for _method, _path, _feature, _message in NOT_SERVED:
    router.add_api_route(_path, _refusal(_message, _feature), methods=[_method], status_code=501,
                         name=f"not_served {_method} {_path}")

"""DeepOrigin on the wire: the REST paths the published ``deeporigin`` client (5.4.0) calls for
its ``executions`` (and the cluster lookup ``executions.create`` makes first), served from
runyard's RunService and RunSearchService, so that client works unchanged with
``DeepOriginClient(base_url=http://<runyard>/compat/deeporigin, token=token_for(<runyard key>),
org_key=<the workspace's name>)``.

Mounted at ``/compat/deeporigin`` (kept out of runyard's OpenAPI: the contract is DeepOrigin's).
Translation rules, documented in docs/compat.md:

- The client decodes its token as a JWT, so the key travels wrapped (runyard.compat.deeporigin:
  ``token_for``; unwrapped by deps.authorization_of); a bare key is accepted too (curl). Either
  way the key is then authenticated as any key is.
- ``{org}`` must name the key's own workspace, else 404 ``organization_not_found``: a key never
  reaches another workspace's runs, whatever the path says.
- A DeepOrigin tool key is a runyard tool's name (or id), its version a version number or
  ``latest``; an execution is a run, whose id is both the tools-service ``executionId`` and the
  data-platform row's ``id``/``compute_job_id``. Status words: deeporigin_wire.STATUS_OF.
- runyard pages by at most 1,000 runs; a DeepOrigin page (up to 10,000) is gathered from them.
- What runyard does not have (billing tags, hidden runs, output destinations, execution names,
  the other DeepOrigin services) answers 501 ``not_implemented`` naming it, never a silent drop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from runyard.api.compat import deeporigin_wire as wire
from runyard.api.compat.shaped_errors import error_shaped_route
from runyard.api.deps import get_principal
from runyard.api.errors import error_payload
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.schemas.run_search import MAX_SEARCH_LIMIT, RunSearchRequest
from runyard.services.access import Principal
from runyard.services.errors import DomainError, NotFound, ValidationFailed
from runyard.services.run_search import RunSearchService
from runyard.services.workspace_names import WorkspaceNames
from runyard.wiring import Platform

PREFIX = "/compat/deeporigin"
# DeepOrigin's services whose other paths runyard does not serve: answered 501 naming them.
DEEPORIGIN_SERVICES = ("tools", "data-platform", "files", "billing", "organizations", "projects", "user-logs",
                       "entities", "results", "progress-reports", "sse")


class NotServed(DomainError):
    """A DeepOrigin feature runyard does not serve."""

    status = 501
    code = "not_implemented"


def not_served(feature: str, instead: str | None = None) -> NotServed:
    message = f"{feature} is not served by runyard's DeepOrigin compatibility"
    return NotServed(message + (f"; {instead}" if instead else ""), details={"feature": feature})


# -- errors in DeepOrigin's shape ---------------------------------------------------------------
def deeporigin_error(request: Request, status: int, code: str, message: str,
                     details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSON:
    """``{statusCode, code, message, errors?}`` (the client reports ``message``) with runyard's
    envelope beside it under ``error``."""
    body: dict[str, Any] = {"statusCode": status, "code": code, "message": message,
                            **error_payload(getattr(request.state, "request_id", None), code, message, details)}
    field_errors = [e for e in (details or {}).get("errors", []) if isinstance(e, dict)]
    if field_errors:
        body["errors"] = field_errors
    elif details and "field" in details:
        body["errors"] = [{"field": details["field"], "message": message}]
    return JSON(body, status_code=status, headers=headers)


DeepOriginRoute = error_shaped_route(deeporigin_error)


router = APIRouter(route_class=DeepOriginRoute, include_in_schema=False)


# -- who calls, in which organization -------------------------------------------------------------
def _platform(request: Request) -> Platform:
    return request.app.state.platform


def _names(request: Request) -> WorkspaceNames:
    names = getattr(request.app.state, "workspace_names", None)
    if names is None:
        names = request.app.state.workspace_names = WorkspaceNames(_platform(request).db)
    return names


async def caller(request: Request, org: str) -> Principal:
    """The key's principal, once ``org`` is found to be its own workspace's name."""
    principal = await get_principal(request)
    if org != await in_thread(_names(request).of, principal):
        raise NotFound(f"organization {org[:100]!r} not found", code="organization_not_found",
                       details={"org": org[:100]})
    return principal


# -- searching runs, a DeepOrigin page at a time ------------------------------------------------
def _search_request(**values: Any) -> RunSearchRequest:
    try:
        return RunSearchRequest.model_validate(values)
    except PydanticValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
                               details={"errors": errors}) from exc


def gather(platform: Platform, principal: Principal, props: list[dict[str, Any]], *, order: str,
           offset: int, count: int, with_total: bool) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``count`` runs from ``offset`` (runyard pages of at most 1,000), and their total
    when asked."""
    service = RunSearchService(platform)
    items: list[dict[str, Any]] = []
    total = None
    while len(items) < count:
        page = service.search(principal, _search_request(
            props=props, order=order, offset=offset + len(items), limit=min(MAX_SEARCH_LIMIT, count - len(items)),
            with_total_count=with_total and not items))
        if not items:
            total = page["total"]
        items.extend(page["items"])
        if page["next_offset"] is None:
            break
    return items, total


def _page_size(value: int | None, field: str) -> int:
    if value is None:
        return wire.DEFAULT_PAGE_SIZE
    if not 1 <= value <= wire.MAX_PAGE_SIZE:
        raise ValidationFailed(f"{field} must be between 1 and {wire.MAX_PAGE_SIZE}",
                               code="invalid_limit", details={"field": field, "max": wire.MAX_PAGE_SIZE})
    return value


# -- the tools service: clusters and executions ------------------------------------------------
@router.get("/tools/{org}/clusters")
async def list_clusters(request: Request, org: str) -> dict[str, Any]:
    """The one cluster runyard runs executions on (its workers); ``executions.create`` takes
    the first cluster's id when the caller gives none."""
    await caller(request, org)
    return {"data": [{"id": wire.CLUSTER_ID, "name": "runyard workers", "orgKey": org, "enabled": True,
                      "status": "Active"}], "count": 1}


class ExecutionBody(BaseModel):
    """What ``executions.create`` sends: the caller's ``data`` plus the fields it stamps."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    cluster_id: str | None = Field(default=None, alias="clusterId", max_length=200)
    project_id: str | None = Field(default=None, alias="projectId", max_length=200)
    app: str | None = Field(default=None, max_length=200)
    session: str | None = Field(default=None, max_length=200)
    approve_amount: float | None = Field(default=None, alias="approveAmount")
    visibility: str | None = None
    name: str | None = None
    tag: str | None = None
    billing: Any = None


def _create_arguments(body: ExecutionBody, tool_version: str) -> dict[str, Any]:
    if body.outputs:
        raise not_served("outputs (where an execution writes its files)",
                         "a tool's files are its run's artifacts")
    if body.visibility == "hidden":
        raise not_served("visibility hidden", "every run is visible to its workspace")
    if body.visibility not in (None, "visible"):
        raise ValidationFailed("visibility must be visible or hidden", details={"field": "visibility"})
    if body.name is not None:
        raise not_served("execution names")
    if body.tag is not None or body.billing is not None:
        raise not_served("billing tags (tag, billing)")
    if body.cluster_id not in (None, wire.CLUSTER_ID):
        raise NotFound(f"cluster {body.cluster_id!r} not found (runyard's is {wire.CLUSTER_ID!r})",
                       code="cluster_not_found", details={"field": "clusterId"})
    if tool_version == "latest":
        version = None
    elif tool_version.isdigit() and 0 < len(tool_version) <= 9:
        version = int(tool_version)
    else:
        raise ValidationFailed("tool version must be a version number or 'latest'",
                               details={"field": "tool_version", "value": tool_version[:50]})
    tags = {"project": body.project_id, "session": body.session, "app": body.app}
    # A negative approveAmount asks for a quote: the run waits for confirm (runyard has no
    # credits, so any other amount approves it).
    quote = body.approve_amount is not None and body.approve_amount < 0
    return {"inputs": body.inputs, "version": version, "tags": {k: v for k, v in tags.items() if v},
            "requires_confirmation": quote}


@router.post("/tools/{org}/tools/{tool_key}/{tool_version}/executions")
async def create_execution(request: Request, org: str, tool_key: str, tool_version: str,
                           body: ExecutionBody) -> JSON:
    principal = await caller(request, org)
    platform = _platform(request)
    arguments = _create_arguments(body, tool_version)
    run, _ = await in_thread(platform.runs.create, principal, tool=tool_key, **arguments)
    return JSON(wire.execution_dto(run), status_code=201)


@router.get("/tools/{org}/tools/executions")
async def list_executions(request: Request, org: str, page: int = Query(0, ge=0, le=1_000_000),
                          page_size: int | None = Query(None, alias="pageSize"),
                          order: str | None = Query(None, max_length=100),
                          filter: str | None = Query(None, max_length=10_000)) -> dict[str, Any]:
    principal = await caller(request, org)
    size = _page_size(page_size, "pageSize")
    sort, direction = wire.order_of(order)
    props = wire.list_props(wire.list_filters(filter))
    if props is None:  # a status no run is ever in
        return {"data": [], "count": 0}
    items, total = await in_thread(gather, _platform(request), principal, props, order=f"{sort} {direction}",
                                   offset=page * size, count=size, with_total=True)
    return {"data": [wire.execution_dto(item) for item in items], "count": total}


@router.get("/tools/{org}/tools/executions/{execution_id}")
async def get_execution(request: Request, org: str, execution_id: str) -> dict[str, Any]:
    principal = await caller(request, org)
    run = await in_thread(_platform(request).runs.get, principal, execution_id, expand_inputs=True)
    return wire.execution_dto(run)


@router.patch("/tools/{org}/tools/executions/{execution_id}:cancel")
async def cancel_execution(request: Request, org: str, execution_id: str) -> dict[str, Any]:
    principal = await caller(request, org)
    return wire.execution_dto(await in_thread(_platform(request).runs.cancel, principal, execution_id))


@router.patch("/tools/{org}/tools/executions/{execution_id}:confirm")
async def confirm_execution(request: Request, org: str, execution_id: str) -> dict[str, Any]:
    principal = await caller(request, org)
    return wire.execution_dto(await in_thread(_platform(request).runs.confirm, principal, execution_id))


# -- the data platform: the same runs as rows -------------------------------------------------
class SearchFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    props: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: SearchFilter = Field(default_factory=SearchFilter)
    limit: int | None = None
    offset: int = Field(default=0, ge=0, le=1_000_000)
    select: list[str] | None = Field(default=None, max_length=100)
    with_total_count: bool = False
    include_hidden: bool = False  # runyard has no hidden runs: every run is searched either way


@router.post("/data-platform/{org}/executions/search")
async def search_executions(request: Request, org: str, body: SearchBody) -> dict[str, Any]:
    principal = await caller(request, org)
    limit = _page_size(body.limit, "limit")
    selected = wire.selected_columns(body.select)
    props = wire.search_props(body.filter.props)
    meta: dict[str, Any] = {"limit": limit, "offset": body.offset}
    if props is None:
        return {"data": [], "meta": {**meta, "count": 0} if body.with_total_count else meta}
    items, total = await in_thread(gather, _platform(request), principal, props, order="created_at desc",
                                   offset=body.offset, count=limit, with_total=body.with_total_count)
    if body.with_total_count:
        meta["count"] = total
    return {"data": [wire.project(wire.platform_row(item), selected) for item in items], "meta": meta}


@router.get("/data-platform/{org}/executions/{execution_id}")
async def get_platform_execution(request: Request, org: str, execution_id: str) -> dict[str, Any]:
    """The same run as ``get``, as the data platform's row (its id is the run's id)."""
    principal = await caller(request, org)
    run = await in_thread(_platform(request).runs.get, principal, execution_id, expand_inputs=True)
    return {"data": wire.platform_row(run)}


# -- everything else of DeepOrigin's -----------------------------------------------------------
@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def not_here(request: Request, path: str) -> Response:
    """A DeepOrigin service runyard does not serve: 501 naming it (after the key is checked);
    a path of no DeepOrigin service, or an executions path that is not one (a stray ``/``,
    ``..``): 404."""
    await get_principal(request)
    segments = path.split("/")
    is_executions = "executions" in segments or any(s.endswith((":cancel", ":confirm")) for s in segments)
    if segments[0] in DEEPORIGIN_SERVICES and not is_executions and ".." not in segments:
        feature = "/".join([segments[0], "{org}", *segments[2:4]] if len(segments) > 1 else segments)
        raise not_served(f"DeepOrigin's /{feature}", "runyard serves the executions of DeepOrigin's tools service "
                         "and data platform (docs/compat.md)")
    raise NotFound(f"no DeepOrigin path /{path[:200]}", code="not_found")

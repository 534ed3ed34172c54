"""DataMaker on the wire: the REST paths of DataMaker's reference (no SDK of its own is
published), served from runyard's services under ``RUNYARD_DATAMAKER_PREFIX`` (default
``/compat/datamaker``), so its ``curl`` examples work unchanged against that prefix.

Kept out of runyard's OpenAPI document: the contract is DataMaker's. Translation rules,
documented in docs/compat.md (DataMaker):

- Errors are runyard's envelope, which is DataMaker's ``{"error": {"code", "message",
  "details"}}`` plus ``request_id``. On the scenario paths a scenario is a runyard tool, so
  ``tool_not_found`` reads ``scenario_not_found`` and ``invalid_tool_name``
  ``invalid_scenario_name`` (the runyard code in ``details.runyard_code``), as the Python
  client (runyard.compat.datamaker) answers them.
- Lists are ``{items, next_cursor, total}`` (``?cursor=&limit=``), the total always counted.
- Templates, saved sets, workspace files and connections are runyard's own, in runyard's
  shapes (the reference defines none of them); ``/templates/{id}@v{n}`` reads a version.
- A scenario is a tool; its runs are the tool's runs (``params`` are the run's inputs, each
  string read as the type the scenario's input asks for: compat.datamaker.params).
- X-RateLimit-* headers and 429 ``Retry-After`` come from the workspace plan's limiter, as on
  ``/api/v1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute

from runyard.api import runs as runs_api
from runyard.api import templates as templates_api
from runyard.api import workspace_files as files_api
from runyard.api.bodies import json_body
from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.api.waiting import wait_for_run
from runyard.compat.datamaker.params import coerce_params, wait_flag
from runyard.schemas import parse
from runyard.schemas.connections import ConnectionCreate
from runyard.services.access import Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.pagination import Page
from runyard.services.runs import CANCEL_RUNS, CREATE_RUNS, TERMINAL_STATUSES
from runyard.services.synth_sets import SAVE_SETS
from runyard.services.templates import CREATE_TEMPLATES, UPDATE_TEMPLATES
from runyard.services.tools import DEPLOY_TOOLS, UPDATE_TOOLS
from runyard.wiring import Platform

DEFAULT_PREFIX = "/compat/datamaker"
#: ``"wait": "true"`` holds the request until the run ends, at most this long (the reference's
#: five minutes); then the run comes back as it stands (202).
WAIT_LIMIT_S = 300.0
#: runyard codes that read better in DataMaker's vocabulary on the scenario paths.
SCENARIO_CODES = {"tool_not_found": "scenario_not_found", "invalid_tool_name": "invalid_scenario_name"}
_SLUG_GAPS = re.compile(r"[^a-z0-9_-]+")
_SCENARIO_FIELDS = {"name", "code", "description", "entrypoint", "requirements", "timeout_s"}
_REPLACE_FIELDS = {"code", "entrypoint", "requirements"}


def prefix_of(platform: Any) -> str:
    """The prefix this node serves DataMaker's paths under (the setting, else the default)."""
    settings = getattr(platform, "settings", None)
    return getattr(settings, "datamaker_prefix", None) or DEFAULT_PREFIX


def check_raw_path(request: Request) -> None:
    """400 ``invalid_path`` for an encoded slash or a ``..`` segment in an id: the server
    decodes ``%2F`` before routing, so ``/scenarios/tool_x%2Fruns`` would otherwise reach
    another route than the one the client named. (A workspace file's name is a path: its
    own rules are the service's.)"""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    text = raw.decode("latin-1").partition("?")[0]
    lowered = text.lower()
    if "%2f" in lowered or "%5c" in lowered or any(seg in ("..", "%2e%2e", ".%2e", "%2e.")
                                                   for seg in lowered.split("/")):
        raise ValidationFailed("a path parameter may not contain '/', '\\' or be '..'", code="invalid_path",
                               details={"path": text[:200]})


class DataMakerRoute(APIRoute):
    """Refuses ids that could climb to another path; on the scenario paths, a tool's error
    codes in a scenario's words (the message too)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.path.startswith("/workspace/files"):
            return handler
        scenario = self.path.startswith("/scenarios")

        async def scenario_handler(request: Request) -> Response:
            check_raw_path(request)
            try:
                return await handler(request)
            except DomainError as exc:
                if not scenario:
                    raise
                code = SCENARIO_CODES.get(exc.code)
                if code is None:
                    raise
                message = exc.message.replace("tool ", "scenario ", 1) if exc.message.startswith("tool ") \
                    else exc.message
                raise DomainError(message, code=code, status=exc.status,
                                  details={**(exc.details or {}), "runyard_code": exc.code}) from exc

        return scenario_handler


router = APIRouter(route_class=DataMakerRoute, include_in_schema=False)


def page_of(page: Page, view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """DataMaker's list body: ``{items, next_cursor, total}``."""
    items = [view(item) for item in page.items] if view else list(page.items)
    return {"items": items, "next_cursor": page.next_cursor, "total": page.total}


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
                               details={"fields": unknown, "allowed": sorted(allowed)})


# -- templates ---------------------------------------------------------------------------------
@router.get("/templates")
async def list_templates(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                         limit: int = Query(100)) -> dict:
    page = await in_thread(platform.templates.list, principal, cursor=cursor, limit=limit, include_total=True)
    return page_of(page)


@router.post("/templates", status_code=201)
async def create_template(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    CREATE_TEMPLATES.check(principal)
    body = await json_body(request)
    return await in_thread(platform.templates.create, principal, body)


@router.get("/templates/{ref}")
async def get_template(ref: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """``{id}`` or ``{id}@v{n}`` (a version), as the reference writes it; a name works too."""
    return await in_thread(platform.templates.get, principal, ref)


@router.patch("/templates/{ref}")
async def update_template(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    UPDATE_TEMPLATES.check(principal)
    body = await json_body(request)
    return await in_thread(platform.templates.update, principal, ref, body)


@router.delete("/templates/{ref}", status_code=204)
async def delete_template(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.templates.delete, principal, ref)
    return Response(status_code=204)


@router.get("/templates/{ref}/versions")
async def template_versions(ref: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                            limit: int = Query(100)) -> dict:
    page = await in_thread(platform.templates.versions, principal, ref, cursor=cursor, limit=limit)
    return page_of(page)


@router.post("/templates/{ref}/generate", response_model=None)
async def generate(ref: str, request: Request, platform: PlatformDep,
                   principal: PrincipalDep) -> StreamingResponse | dict:
    """``{count, format, seed, overrides}``: the rows streamed in ``format`` (or as ``Accept``
    asks, e.g. ``text/csv``), exactly as runyard's own generate route does."""
    return await templates_api.generate(ref, request, platform, principal)


@router.post("/templates/{ref}/preview")
async def preview(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Three rows, never counted against the generation quota."""
    body = await json_body(request, allow_empty=True)
    return await in_thread(platform.templates.preview, principal, ref, body)


# -- scenarios ---------------------------------------------------------------------------------
def scenario_view(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema") or {}
    return {"id": tool["id"], "name": tool["name"], "description": tool.get("description") or "",
            "version": tool["version"], "entrypoint": tool.get("entrypoint"),
            "params": sorted((schema.get("properties") or {}).keys()), "params_schema": schema,
            "created_at": tool.get("created_at"), "updated_at": tool.get("updated_at")}


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    error = run.get("error")
    usage = run.get("usage") or {}
    view = {
        "id": run["id"], "scenario_id": run["tool_id"], "scenario_name": run["tool_name"],
        "scenario_version": run["tool_version"], "status": run["status"], "output": run.get("output"),
        "error": None if error is None else {"code": error.get("type") or "error",
                                             "message": error.get("message") or "",
                                             "traceback": error.get("traceback")},
        "created_at": run.get("created_at"), "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"), "duration_ms": usage.get("wall_ms"), "attempt": run.get("attempt"),
    }
    if run.get("inputs") is not None:
        view["params"] = run["inputs"]
    return view


def scenario_slug(name: Any) -> str:
    """A runyard tool name for a scenario name: lowercase, other characters as '-'."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name must be a non-empty string", code="invalid_scenario_name",
                               details={"field": "name"})
    slug = _SLUG_GAPS.sub("-", name.strip().lower()).strip("-")
    return slug[:64].rstrip("-") or name


def _code(body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValidationFailed("code must be the scenario's Python source", details={"field": "code"})
    return code


@router.get("/scenarios")
async def list_scenarios(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                         limit: int = Query(50), search: str | None = Query(None, max_length=200)) -> dict:
    page = await in_thread(lambda: platform.tools.list_for(principal, search=search, sort="created_at",
                                                           order="desc", cursor=cursor, limit=limit,
                                                           include_total=True))
    return page_of(page, scenario_view)


@router.post("/scenarios", status_code=201)
async def create_scenario(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """``{name, code, description?, entrypoint?, requirements?, timeout_s?}``; a name already
    taken is 409 ``scenario_exists`` (replace its code with ``PUT``)."""
    DEPLOY_TOOLS.check(principal)
    body = await json_body(request)
    _only(body, _SCENARIO_FIELDS)
    name, code = scenario_slug(body.get("name")), _code(body)

    def create() -> dict[str, Any]:
        try:
            existing = platform.tools.get_for(principal, name)
        except NotFound:
            pass  # the name is free
        else:
            raise Conflict(f"a scenario named {name!r} already exists", code="scenario_exists",
                           details={"scenario_id": existing["id"], "name": name})
        fields = {k: body[k] for k in ("requirements", "timeout_s") if body.get(k) is not None}
        tool, _ = platform.tools.deploy_for(principal, name=name, code=code,
                                            entrypoint=body.get("entrypoint") or "main",
                                            description=body.get("description") or "", **fields)
        return tool

    return scenario_view(await in_thread(create))


@router.get("/scenarios/{scenario_id}")
async def get_scenario(scenario_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return scenario_view(await in_thread(platform.tools.get_for, principal, scenario_id))


@router.put("/scenarios/{scenario_id}")
async def replace_scenario(scenario_id: str, request: Request, platform: PlatformDep,
                           principal: PrincipalDep) -> dict:
    """Replace the code (``{code, entrypoint?, requirements?}``, or the source itself as
    ``text/plain``): a new version, which runs started afterwards use."""
    UPDATE_TOOLS.check(principal)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() in ("text/plain", "text/x-python"):
        raw = await request.body()
        body: dict[str, Any] = {"code": raw.decode("utf-8", errors="strict") if raw else ""}
    else:
        body = await json_body(request)
        _only(body, _REPLACE_FIELDS)
    fields = {k: body[k] for k in ("entrypoint", "requirements") if body.get(k) is not None}
    code = _code(body)
    tool = await in_thread(lambda: platform.tools.update_for(principal, scenario_id, code=code, **fields))
    return scenario_view(tool)


@router.post("/scenarios/{scenario_id}/run", status_code=201)
async def run_scenario(scenario_id: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    """``{params, wait}``: ``wait`` ``"false"`` (default) answers at once; ``"true"`` holds until
    the run ends, five minutes at most (then 202 with the run as it stands)."""
    CREATE_RUNS.check(principal)
    body = await json_body(request, allow_empty=True)
    _only(body, {"params", "wait"})
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationFailed("params must be an object of names to values", details={"field": "params"})
    try:
        blocking = wait_flag(body.get("wait", False))
    except ValueError as exc:
        raise ValidationFailed(str(exc), details={"field": "wait"}) from None

    def start() -> dict[str, Any]:
        tool = platform.tools.get_for(principal, scenario_id)
        inputs = coerce_params(params, tool.get("input_schema"))
        run, _ = platform.runs.create(principal, tool=tool["id"], version=tool["version"], inputs=inputs,
                                      trigger="api")
        return run

    run = await in_thread(start)
    if blocking and run["status"] not in TERMINAL_STATUSES:
        run = await wait_for_run(platform, principal, run["id"], WAIT_LIMIT_S, expand_inputs=True)
    else:
        run = await in_thread(platform.runs.get, principal, run["id"], expand_inputs=True)
    return JSON(run_view(run), status_code=202 if blocking and run["status"] not in TERMINAL_STATUSES else 201)


async def own_run(platform: Platform, principal: Principal, scenario_id: str, run_id: str,
                  *, expand_inputs: bool = False) -> dict[str, Any]:
    """The run, when it is a run of this scenario; 404 ``run_not_found`` otherwise (never
    another scenario's run through this path)."""
    def read() -> dict[str, Any]:
        tool = platform.tools.get_for(principal, scenario_id)
        run = platform.runs.get(principal, run_id, expand_inputs=expand_inputs)
        if run["tool_id"] != tool["id"] or run.get("type", "tool") != "tool":
            raise NotFound(f"run {run_id!r} is not a run of scenario {scenario_id!r}", code="run_not_found",
                           details={"run_id": run_id, "scenario_id": scenario_id})
        return run

    return await in_thread(read)


@router.get("/scenarios/{scenario_id}/runs")
async def scenario_runs(scenario_id: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(50), status: list[str] | None = Query(None)) -> dict:
    statuses = [s for value in status or [] for s in value.split(",") if s]

    def read() -> Page:
        tool = platform.tools.get_for(principal, scenario_id)
        return platform.runs.list(principal, tool=tool["id"], statuses=statuses, run_type="tool", cursor=cursor,
                                  limit=limit, include_total=True)

    return page_of(await in_thread(read), run_view)


@router.get("/scenarios/{scenario_id}/runs/{run_id}")
async def scenario_run(scenario_id: str, run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return run_view(await own_run(platform, principal, scenario_id, run_id, expand_inputs=True))


@router.get("/scenarios/{scenario_id}/runs/{run_id}/logs", response_model=None)
async def scenario_run_logs(scenario_id: str, run_id: str, platform: PlatformDep, principal: PrincipalDep,
                            follow: bool = False, offset: int = Query(0, ge=0),
                            last_event_id: str | None = Header(None)) -> PlainTextResponse | StreamingResponse:
    """The log as text; ``?follow=true``: runyard's SSE log stream (``log`` events, then ``end``)."""
    await own_run(platform, principal, scenario_id, run_id)
    return await runs_api.run_logs(run_id, platform, principal, offset=offset, follow=follow,
                                   last_event_id=last_event_id)


@router.delete("/scenarios/{scenario_id}/runs/{run_id}")
async def cancel_scenario_run(scenario_id: str, run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Cancel: the run's processes are stopped (the answer waits up to 5 s for its end); a run
    that already ended comes back as it is."""
    CANCEL_RUNS.check(principal)
    await own_run(platform, principal, scenario_id, run_id)
    run = await in_thread(platform.runs.cancel, principal, run_id)
    if run["status"] not in TERMINAL_STATUSES:
        run = await wait_for_run(platform, principal, run_id, 5.0)
    return run_view(await in_thread(platform.runs.get, principal, run_id, expand_inputs=True))


# -- saved sets --------------------------------------------------------------------------------
@router.get("/sets")
async def list_sets(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                    limit: int = Query(100)) -> dict:
    return page_of(await in_thread(platform.sets.list, principal, cursor=cursor, limit=limit, include_total=True))


@router.post("/sets", status_code=201)
async def save_set(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """``{name, rows}``; re-using a name adds a version."""
    SAVE_SETS.check(principal)
    body = await json_body(request)
    _only(body, {"name", "rows"})
    return await in_thread(platform.sets.save_rows, principal, body.get("name"), body.get("rows"))


@router.get("/sets/{name}")
async def load_set(name: str, platform: PlatformDep, principal: PrincipalDep,
                   version: int | None = Query(None, ge=1, le=2**31 - 1),
                   offset: int = Query(0, ge=0, le=2**53), limit: int = Query(10_000, ge=1, le=1_000_000)) -> dict:
    return await in_thread(platform.sets.load, principal, name, version, offset=offset, limit=limit)


@router.delete("/sets/{name}", status_code=204)
async def delete_set(name: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.sets.delete, principal, name)
    return Response(status_code=204)


# -- workspace files ---------------------------------------------------------------------------
@router.get("/workspace/files")
async def list_files(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                     limit: int = Query(100), prefix: str | None = Query(None, max_length=255)) -> dict:
    page = await in_thread(lambda: platform.workspace_files.list(principal, cursor=cursor, limit=limit,
                                                                 include_total=True, prefix=prefix))
    return page_of(page)


@router.post("/workspace/files", status_code=201)
async def upload_file(request: Request, platform: PlatformDep, principal: PrincipalDep,
                      overwrite: bool = False) -> dict:
    """Multipart ``name`` + ``file``, streamed to the blob store as runyard's own upload is."""
    return await files_api.upload_file(request, platform, principal, overwrite=overwrite)


@router.get("/workspace/files/{name:path}", response_model=None)
async def download_file(name: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> Response:
    return await files_api.download_file(name, request, platform, principal)


@router.delete("/workspace/files/{name:path}", status_code=204)
async def delete_file(name: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.workspace_files.delete, principal, name)
    return Response(status_code=204)


# -- connections -------------------------------------------------------------------------------
@router.get("/connections")
async def list_connections(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                           limit: int = Query(100), type: str | None = Query(None, max_length=40)) -> dict:
    page = await in_thread(lambda: platform.connections.list(principal, cursor=cursor, limit=limit,
                                                             include_total=True, type=type))
    return page_of(page)


@router.post("/connections", status_code=201)
async def create_connection(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """``{name, type, config}``: the config's shape is the type's (docs/connections.md)."""
    body = parse(ConnectionCreate, await json_body(request))
    return await in_thread(lambda: platform.connections.create(principal, name=body.name, type=body.type,
                                                               config=body.config))


@router.post("/connections/{connection}/verify")
async def verify_connection(connection: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.connections.verify, principal, connection)


@router.get("/connections/{connection}/metadata")
async def connection_metadata(connection: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.connections.metadata, principal, connection)

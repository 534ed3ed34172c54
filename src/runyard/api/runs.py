"""/runs — create, watch, control runs; their logs, artifacts and input files."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import tempfile
import zipfile
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask

from runyard.api.bodies import is_multipart, json_body, multipart_body
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.responses import JSON
from runyard.api.run_batches import RUN_PATH
from runyard.api.waiting import wait_for_run
from runyard.schemas import inline_schema, parse
from runyard.schemas.common import Page
from runyard.schemas.runs import ArtifactView, RunCreate, RunDefinition, RunInput, RunView
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.pagination import MAX_LIMIT, MAX_OFFSET
from runyard.services.run_execution import RUN_EXPANDS, parse_expand
from runyard.services.runs import (
    ALL_STATUSES,
    CALLER_TRIGGERS,
    CANCEL_RUNS,
    CREATE_RUNS,
    LIST_SORTS,
    MAX_LIST_IDS,
    RUN_TYPES,
    TERMINAL_STATUSES,
    TRIGGERS,
    UPLOAD_RUN_FILES,
    parse_time,
)
from runyard.wiring import Platform

router = APIRouter(tags=["runs"], responses=error_responses(*AUTHENTICATED))
MAX_WAIT_S = 600.0
_CREATE_DOC = {"requestBody": {"content": {
    "application/json": {"schema": inline_schema(RunCreate)},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "payload": {"type": "string", "description": "the JSON body"}},
        "additionalProperties": {"type": "string", "format": "binary"}}},
}}}


_WAIT = {"minimum": 0, "maximum": MAX_WAIT_S}
Expand = Literal["inputs"]


def _check_wait(wait: float | None) -> float | None:
    if wait is not None and not 0 <= wait <= MAX_WAIT_S:
        raise ValidationFailed(f"wait must be between 0 and {MAX_WAIT_S:g} seconds", details={"field": "wait"})
    return wait


@router.post("/runs", status_code=201, openapi_extra=_CREATE_DOC, response_model=RunView, responses={
    200: {"description": "The run an earlier request with the same `Idempotency-Key` created"},
    202: {"description": "`wait` passed before the run ended: the run as it stands"},
    **error_responses(404, 409, 413, 415)})
async def create_run(request: Request, platform: PlatformDep, principal: PrincipalDep,
                     wait: float | None = Query(None, json_schema_extra=_WAIT), expand: Expand | None = None,
                     idempotency_key: str | None = Header(None)) -> JSON:
    # JSON bodies are served by api.fastlane before FastAPI; multipart ones come here.
    if is_multipart(request):
        body, files = await multipart_body(request, "payload")
    else:
        body, files = await json_body(request), {}
    run, status = await create_run_flow(
        platform, principal, body, files, wait=wait, expand=expand, idempotency_key=idempotency_key,
        trigger_header=request.headers.get("x-runyard-trigger"), user_agent=request.headers.get("user-agent", ""))
    return JSON(run, status_code=status)


async def create_run_flow(platform: Platform, principal: Principal, body: dict[str, Any],
                          files: dict[str, Any], *, wait: float | None, expand: str | None,
                          idempotency_key: str | None, trigger_header: str | None,
                          user_agent: str) -> tuple[dict[str, Any], int]:
    """Create a run (and wait for it when asked): the run and the HTTP status to answer with."""
    CREATE_RUNS.check(principal)  # before the parameters are judged, as the service would
    _check_wait(wait)
    if expand not in (None, "inputs"):  # (api.fastlane passes the query string's value as it is)
        raise ValidationFailed("expand must be 'inputs'", details={"field": "expand"})
    request = parse(RunCreate, body)
    tags = request.tags.model_dump(exclude_none=True) if request.tags is not None else None
    trigger = trigger_header or ("sdk" if user_agent.startswith("runyard-python/") else "api")
    if trigger not in CALLER_TRIGGERS:
        raise ValidationFailed(f"trigger must be one of {', '.join(CALLER_TRIGGERS)}",
                               details={"field": "trigger", "value": trigger, "allowed": list(CALLER_TRIGGERS)})
    if (request.tool is None) == (request.workflow is None):
        raise ValidationFailed("give either tool or workflow", details={"field": "tool"})
    if request.workflow is not None:
        if request.requires_confirmation:
            raise ValidationFailed("requires_confirmation is for tool runs (a workflow can wait_for_input)",
                                   details={"field": "requires_confirmation"})
        workflow = request.workflow
        if request.timeout_s is not None:
            raise ValidationFailed("timeout_s is for tool runs (a workflow's steps declare their own)",
                                   details={"field": "timeout_s"})
        run, created = await in_thread(
            lambda: platform.workflow_runs.start(
                principal, workflow=workflow, version=request.version, inputs=request.inputs, tags=tags,
                idempotency_key=idempotency_key, trigger=trigger, files=files))
    else:
        if isinstance(request.version, str):
            raise ValidationFailed("a tool's version is a number", details={"field": "version"})
        run, created = await in_thread(
            lambda: platform.runs.create(
                principal, tool=request.tool or "", version=request.version, inputs=request.inputs, tags=tags,
                requires_confirmation=request.requires_confirmation, idempotency_key=idempotency_key,
                trigger=trigger, files=files, timeout_s=request.timeout_s))
    expand_inputs = expand == "inputs"
    if wait and run["status"] not in TERMINAL_STATUSES and run["status"] != "awaiting_confirmation":
        run = await wait_for_run(platform, principal, run["id"], wait, expand_inputs=expand_inputs,
                                 first=None if expand_inputs else run)
    elif expand_inputs:
        run = await in_thread(platform.runs.get, principal, run["id"], expand_inputs=True)
    finished = run["status"] in TERMINAL_STATUSES
    return run, (201 if created else 200) if (finished or not wait) else 202


@router.get("/runs", response_model=Page[RunView], response_model_exclude_unset=True)
async def list_runs(platform: PlatformDep, principal: PrincipalDep,
                    tool: list[str] | None = Query(None, description="Tool names or ids, repeated or comma-separated "
                                                   "(any of them)"),
                    status: list[str] | None = Query(
                        None, description="Statuses, repeated or comma-separated",
                        json_schema_extra={"items": {"type": "string", "enum": list(ALL_STATUSES)}}),
                    session: str | None = None, batch_id: str | None = None, example_id: str | None = None,
                    created_after: str | None = Query(None, json_schema_extra={"format": "date-time"}),
                    created_before: str | None = Query(None, json_schema_extra={"format": "date-time"}),
                    run_type: str | None = Query(None, alias="type", description="What the run runs",
                                                 json_schema_extra={"enum": list(RUN_TYPES)}),
                    trigger: list[str] | None = Query(
                        None, description="What started the run: triggers, repeated or comma-separated",
                        json_schema_extra={"items": {"type": "string", "enum": list(TRIGGERS)}}),
                    triggered_by: str | None = Query(
                        None, description="Who or what started it: a user id (api, cli, sdk, rerun), a schedule's "
                                          "or webhook's id"),
                    source: str | None = Query(None, description="The tool's (or workflow's) name"),
                    parent_run_id: str | None = None,
                    completed_after: str | None = Query(None, json_schema_extra={"format": "date-time"}),
                    completed_before: str | None = Query(None, json_schema_extra={"format": "date-time"}),
                    ids: str | None = Query(None, description=f"Run ids, comma-separated (at most {MAX_LIST_IDS})"),
                    sort: str = Query("created_at", json_schema_extra={"enum": list(LIST_SORTS)}),
                    order: str = Query("desc", json_schema_extra={"enum": ["asc", "desc"]}), cursor: str | None = None,
                    offset: int | None = Query(None, description="Runs to skip; instead of a cursor, never with one",
                                               json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET}),
                    limit: int | None = Query(None, description="Runs per page (default 50)"),
                    include_total: bool = False,
                    project: str | None = None, app: str | None = None,
                    source_ref: str | None = Query(None, description="What the run came from (tags.source_ref)"),
                    worker_id: str | None = None,
                    example_id_contains: str | None = Query(None, description="A part of the example id "
                                                            "(case-sensitive)"),
                    page: int | None = Query(None, description="A numbered page, from 1 (instead of cursor, "
                                             "offset and limit)", json_schema_extra={"minimum": 1}),
                    page_size: int | None = Query(None, description="Runs per numbered page (default 50)",
                                                  json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT})) -> dict:
    statuses = [s for value in status or [] for s in value.split(",") if s]
    tools = [t for value in tool or [] for t in value.split(",") if t]
    triggers = [t for value in trigger or [] for t in value.split(",") if t]
    id_list = None if ids is None else [i for i in (part.strip() for part in ids.split(",")) if i]
    return await paged(
        lambda: platform.runs.list(
            principal, tool=tools, statuses=statuses, session=session, batch_id=batch_id, example_id=example_id,
            created_after=parse_time(created_after, "created_after"),
            created_before=parse_time(created_before, "created_before"),
            run_type=run_type, triggers=triggers, triggered_by=triggered_by, source=source, parent_run_id=parent_run_id,
            completed_after=parse_time(completed_after, "completed_after"),
            completed_before=parse_time(completed_before, "completed_before"), ids=id_list,
            sort=sort, order=order, cursor=cursor, offset=offset, limit=limit, include_total=include_total,
            project=project, app=app, source_ref=source_ref, worker_id=worker_id,
            example_id_contains=example_id_contains, page=page, page_size=page_size))


@router.get(RUN_PATH, response_model=RunView, response_model_exclude_unset=True, responses=error_responses(404))
async def get_run(run_id: str, platform: PlatformDep, principal: PrincipalDep,
                  expand: str | None = Query(None, description="Comma-separated: " + ", ".join(RUN_EXPANDS)
                                             + " (usage is always included)")) -> dict:
    parts = parse_expand(expand)
    if not parts - {"inputs", "usage"}:  # the common case: the row alone
        return await in_thread(platform.runs.get, principal, run_id, expand_inputs="inputs" in parts)
    return await in_thread(platform.run_execution.get, principal, run_id, parts)


@router.get("/runs/{run_id}/wait", response_model=RunView, response_model_exclude_unset=True, responses=error_responses(404))
async def wait_run(run_id: str, platform: PlatformDep, principal: PrincipalDep,
                   timeout: float = Query(30.0, json_schema_extra=_WAIT), expand: Expand | None = None) -> dict:
    """Long-poll: the run once it is terminal, or as it stands when ``timeout`` passes."""
    _check_wait(timeout)
    return await wait_for_run(platform, principal, run_id, timeout, expand_inputs=expand == "inputs")


@router.post("/runs/{run_id}/confirm", response_model=RunView, response_model_exclude_unset=True, responses=error_responses(404, 409))
async def confirm_run(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.runs.confirm, principal, run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunView, response_model_exclude_unset=True, responses=error_responses(404, 409))
async def cancel_run(run_id: str, platform: PlatformDep, principal: PrincipalDep,
                     wait: float = Query(5.0, json_schema_extra=_WAIT)) -> dict:
    """Cancel; a running run is killed and the response waits (up to ``wait`` s) for its end."""
    CANCEL_RUNS.check(principal)  # before judging wait; the service checks again
    _check_wait(wait)
    run = await in_thread(platform.runs.cancel, principal, run_id)
    if run["status"] not in TERMINAL_STATUSES and wait:
        run = await wait_for_run(platform, principal, run_id, wait)
    return run


@router.post("/runs/{run_id}/rerun", status_code=201, response_model=RunView, responses={
    202: {"description": "`wait` passed before the new run ended: the run as it stands"},
    **error_responses(404, 409)})
async def rerun(run_id: str, platform: PlatformDep, principal: PrincipalDep,
                version: str = Query("original", json_schema_extra={"enum": ["original", "latest"]}),
                wait: float | None = Query(None, json_schema_extra=_WAIT), idempotency_key: str | None = Header(None)) -> JSON:
    CREATE_RUNS.check(principal)  # before judging wait; the service checks again
    _check_wait(wait)
    run = await in_thread(platform.runs.rerun, principal, run_id, version=version,
                          idempotency_key=idempotency_key)
    if wait:
        run = await wait_for_run(platform, principal, run["id"], wait)
    return JSON(run, status_code=201 if run["status"] in TERMINAL_STATUSES or not wait else 202)


@router.post("/runs/{run_id}/files", responses=error_responses(404, 409, 413, 415), openapi_extra={
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "additionalProperties": {"type": "string", "format": "binary"},
        "description": "one file part per file input, named after the input"}}}}})
async def upload_files(run_id: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    UPLOAD_RUN_FILES.check(principal)  # before the upload is read; the service checks again
    if not is_multipart(request):
        raise ValidationFailed("upload files as multipart/form-data; each part named after its input",
                               code="unsupported_media_type", status=415)
    _, files = await multipart_body(request, "payload")
    return await in_thread(platform.runs.add_files, principal, run_id, files)


# -- logs ------------------------------------------------------------------------------------
@router.get("/runs/{run_id}/logs", response_model=None, responses={
    200: {"description": "The log as text from `offset`; with `follow=true` an SSE stream of `log` events then `end`",
          "content": {"text/plain": {"schema": {"type": "string"}},
                      "text/event-stream": {"schema": {"type": "string"}}},
          "headers": {"X-Log-Offset": {"description": "The offset to read on from (plain text only)",
                                       "schema": {"type": "integer"}}}},
    **error_responses(404)})
async def run_logs(run_id: str, platform: PlatformDep, principal: PrincipalDep, offset: int = Query(0, ge=0),
                   follow: bool = False,
                   last_event_id: str | None = Header(None)) -> PlainTextResponse | StreamingResponse:
    await in_thread(platform.runs.get, principal, run_id)
    path = platform.runs.files.log(run_id)
    if not follow:
        data = await in_thread(_read_from, path, offset, None)
        return PlainTextResponse(data.decode("utf-8", errors="replace"),
                                 headers={"X-Log-Offset": str(offset + len(data))})
    if last_event_id is not None:
        try:
            offset = max(offset, int(last_event_id))
        except ValueError as exc:
            raise ValidationFailed("Last-Event-ID must be a byte offset", details={"field": "Last-Event-ID"}) from exc
    return StreamingResponse(_follow(platform, principal, run_id, path, offset), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _read_from(path: Any, offset: int, limit: int | None) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read() if limit is None else fh.read(limit)
    except FileNotFoundError:
        return b""


def _sse(event: str, data: str, event_id: int | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


FOLLOW_REREAD_S = 1.0  # a follower rereads this often with no event (one lost or not relayed)
KEEPALIVE_S = 15.0


async def _follow(platform: Any, principal: Any, run_id: str, path: Any, offset: int) -> AsyncIterator[bytes]:
    """The log's new lines as they come: woken by ``run.log:<id>`` (the log grew) and
    ``run.done:<id>`` (the run ended) on the event bus, not by polling."""
    yield b"retry: 1000\n\n"
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    ended = [False]

    def on_log(_topic: str, _payload: Any) -> None:
        loop.call_soon_threadsafe(wake.set)

    def on_done(_topic: str, _payload: Any) -> None:
        ended[0] = True
        loop.call_soon_threadsafe(wake.set)

    unsubscribe = [platform.hub.subscribe(f"run.log:{run_id}", on_log),
                   platform.hub.subscribe(f"run.done:{run_id}", on_done)]
    try:
        async for piece in _follow_events(platform, principal, run_id, path, offset, wake, ended):
            yield piece
    finally:
        for stop in unsubscribe:
            stop()


async def _follow_events(platform: Any, principal: Any, run_id: str, path: Any, offset: int,
                         wake: asyncio.Event, ended: list[bool]) -> AsyncIterator[bytes]:
    idle = 0.0
    check_status = True  # at the start, at the run's end, and on a reread without event
    terminal, status = False, ""
    while True:
        wake.clear()
        if check_status or ended[0]:
            run = await in_thread(platform.runs.get, principal, run_id)
            status = run["status"]
            terminal = status in TERMINAL_STATUSES
            check_status = False
        chunk = await in_thread(_read_from, path, offset, 1 << 20)
        # Send whole lines only (a partial line waits for its end) so an event never
        # splits a UTF-8 character; at the end everything left is sent.
        cut = len(chunk) if terminal else chunk.rfind(b"\n") + 1
        if cut == 0 and len(chunk) == 1 << 20:
            # A line longer than a read: send it in pieces, cut at a UTF-8 boundary.
            cut = len(chunk)
            while cut > 0 and (chunk[cut - 1] & 0xC0) == 0x80:
                cut -= 1
            cut = max(cut - 1, 1) if chunk[cut - 1] >= 0xC0 else cut
        if cut > 0:
            offset += cut
            idle = 0.0
            text = chunk[:cut].decode("utf-8", errors="replace")
            yield _sse("log", text[:-1] if text.endswith("\n") else text, offset)
            if len(chunk) > cut or len(chunk) == 1 << 20:
                continue
        if terminal and cut == len(chunk):
            if len(chunk) < 1 << 20:
                yield _sse("end", f'{{"status": "{status}"}}')
                return
            continue
        try:
            await asyncio.wait_for(wake.wait(), FOLLOW_REREAD_S)
        except TimeoutError:
            check_status = True
            idle += FOLLOW_REREAD_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keep-alive\n\n"


@router.get("/runs/{run_id}/trace", responses=error_responses(404))
async def run_trace(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """A tool run: the trace events the tool recorded with ``runyard.context.trace(...)``, in
    order. A workflow run: its step timeline (``TraceStep`` items: each step run's start,
    end, status, attempt, duration, input and output digests; skipped and pending steps)."""
    run = await in_thread(platform.runs.get, principal, run_id)
    if run["type"] == "workflow":
        steps = await in_thread(platform.workflow_runs.trace, principal, run_id)
        return {"object": "list", "items": steps, "next_cursor": None, "total": len(steps)}
    raw = await in_thread(_read_from, platform.runs.files.trace(run_id), 0, None)
    items = [json.loads(line) for line in raw.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return {"object": "list", "items": items, "next_cursor": None, "total": len(items)}


@router.post("/runs/{run_id}/input", response_model=RunView, response_model_exclude_unset=True,
             responses=error_responses(404, 409))
async def send_input(run_id: str, body: RunInput, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """End a ``wait_for_input`` step: ``payload`` becomes its output and the workflow goes
    on. ``run_id`` is the waiting step's run or its workflow run."""
    return await in_thread(platform.workflow_runs.send_input, principal, run_id, body.payload, body.step_id)


@router.get("/runs/{run_id}/definition", response_model=RunDefinition, responses=error_responses(404))
async def run_definition(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The exact workflow definition a workflow run used."""
    return await in_thread(platform.workflow_runs.definition_of, principal, run_id)


# -- artifacts -------------------------------------------------------------------------------
@router.get("/runs/{run_id}/artifacts", response_model=Page[ArtifactView], response_model_exclude_unset=True,
            responses=error_responses(404))
async def list_artifacts(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    items = await in_thread(platform.runs.artifacts, principal, run_id)
    return {"object": "list", "items": items, "next_cursor": None, "total": len(items)}


@router.get("/runs/{run_id}/artifacts.zip", response_class=FileResponse, responses={
    200: {"description": "Every artifact in one zip file",
          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
    **error_responses(404)})
async def artifacts_zip(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> FileResponse:
    run = await in_thread(platform.runs.visible_row, principal, run_id)

    def build() -> str:
        tmp = tempfile.NamedTemporaryFile(prefix="runyard-artifacts-", suffix=".zip", delete=False)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, row in platform.runs.artifact_rows(run):
                zf.write(platform.runs.files.blob(row.blob_key), path)
        tmp.close()
        return tmp.name

    name = await in_thread(build)
    import os
    return FileResponse(name, media_type="application/zip", filename=f"{run_id}-artifacts.zip",
                        background=BackgroundTask(os.unlink, name))


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=FileResponse, responses={
    200: {"description": "The artifact's bytes, with its content type",
          "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
    **error_responses(404)})
async def get_artifact(run_id: str, path: str, platform: PlatformDep, principal: PrincipalDep) -> FileResponse:
    row = await in_thread(platform.runs.artifact, principal, run_id, path)
    media = row.content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
    return FileResponse(platform.runs.files.blob(row.blob_key), media_type=media,
                        filename=path.rsplit("/", 1)[-1])

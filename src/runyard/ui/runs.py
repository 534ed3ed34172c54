"""/ui/runs: the filterable run list (live), a run's page (timeline, inputs and output, live
logs, artifacts, trace, step graph) and its confirm / cancel / rerun buttons.

Logs are paged, never sent whole: the page shows the last ``LOG_LINES`` lines, earlier pages
come on demand (``/logs/before``), and new lines stream over SSE from the API's own follower
(api.runs._follow, woken by the event hub).
"""

from __future__ import annotations

import json
import mimetypes
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from runyard.api.offload import in_thread
from runyard.api.runs import _follow
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.runs import (
    ALL_STATUSES,
    CANCEL_RUNS,
    CONFIRM_RUNS,
    CREATE_RUNS,
    TERMINAL_STATUSES,
    TRIGGERS,
)
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.ui.previews import preview_of
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 50
LOG_LINES = 500  # lines of a log a page shows at once
LOG_READ = 256 * 1024  # bytes read per step when paging back through a log
MAX_LOG_PAGE_BYTES = 2 * 1024 * 1024


def _when(value: str, field: str) -> datetime | None:
    """A ``datetime-local`` value (UTC) or an RFC 3339 time; empty: none."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{field} must be a date and time", details={"field": field}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(status: str, source: str, trigger: str, after: str, before: str, session_tag: str) -> dict[str, Any]:
    if status and status not in ALL_STATUSES:
        raise ValidationFailed("unknown status", details={"field": "status"})
    if trigger and trigger not in TRIGGERS:
        raise ValidationFailed("unknown trigger", details={"field": "trigger"})
    return {"statuses": [status] if status else None, "source": source.strip()[:200] or None,
            "triggers": [trigger] if trigger else None, "created_after": _when(after, "after"),
            "created_before": _when(before, "before"), "session": session_tag.strip()[:200] or None}


async def _run_page(request: Request, session: Any, query: dict[str, str], cursor: str | None) -> dict[str, Any]:
    filters = _filters(**query)
    page = await in_thread(lambda: platform_of(request).runs.list(session.principal, cursor=cursor or None,
                                                                   limit=PAGE, **filters))
    live = any(run["status"] not in TERMINAL_STATUSES for run in page.items)
    next_url = None
    if page.next_cursor:
        kept = {("session" if k == "session_tag" else k): v for k, v in query.items() if v}
        next_url = "/ui/runs?" + urlencode({**kept, "cursor": page.next_cursor})
    return {"runs": page.items, "next_url": next_url, "live": live}


def _query(status: str, source: str, trigger: str, after: str, before: str, session_tag: str) -> dict[str, str]:
    return {"status": status, "source": source, "trigger": trigger, "after": after, "before": before,
            "session_tag": session_tag}


@router.get("/runs", response_class=HTMLResponse)
async def run_list(request: Request, session: SessionDep, status: str = "", source: str = "", trigger: str = "",
                   after: str = "", before: str = "", session_tag: str = Query("", alias="session"),
                   cursor: str | None = None) -> HTMLResponse:
    query = _query(status, source, trigger, after, before, session_tag)
    page = await _run_page(request, session, query, cursor)
    return render(request, session, "runs/list.html", **page, query=query, statuses=ALL_STATUSES,
                  triggers=TRIGGERS, cursor=cursor or "", table_url=_table_url(request))


def _table_url(request: Request) -> str:
    return "/ui/runs/table" + (f"?{request.url.query}" if request.url.query else "")


@router.get("/runs/table", response_class=HTMLResponse)
async def run_table(request: Request, session: SessionDep, status: str = "", source: str = "", trigger: str = "",
                    after: str = "", before: str = "", session_tag: str = Query("", alias="session"),
                    cursor: str | None = None) -> HTMLResponse:
    """The list's table alone: htmx refreshes it while a listed run is still going."""
    query = _query(status, source, trigger, after, before, session_tag)
    page = await _run_page(request, session, query, cursor)
    return render(request, session, "runs/_table.html", **page, table_url=_table_url(request))


# -- one run ----------------------------------------------------------------------------------
def _read(path: Any, start: int, end: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(max(0, end - start))
    except FileNotFoundError:
        return b""


def _size(path: Any) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def log_lines_before(path: Any, end: int, count: int = LOG_LINES) -> tuple[int, list[str]]:
    """(start, lines): up to ``count`` whole lines of the log ending at byte ``end``, and where
    they start (0: the log's beginning)."""
    start = end
    data = b""
    while start > 0 and data.count(b"\n") <= count and end - start < MAX_LOG_PAGE_BYTES:
        step = min(LOG_READ, start)
        start -= step
        data = _read(path, start, start + step) + data
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    if start > 0 and lines:  # the first piece may be the tail of an earlier line: leave it to the next page
        start += len(lines[0]) + 1
        lines = lines[1:]
    if len(lines) > count:
        drop = lines[:len(lines) - count]
        start += sum(len(line) + 1 for line in drop)
        lines = lines[len(lines) - count:]
    return start, [line.decode("utf-8", errors="replace") for line in lines]


def _names(needs: Any) -> list[str]:
    """A step's ``needs`` as written: one step's id, or a list of them."""
    if isinstance(needs, str):
        return [needs]
    return [str(n) for n in needs] if isinstance(needs, list) else []


def _run_context(platform: Platform, principal: Principal, run_id: str) -> dict[str, Any]:
    run = platform.runs.get(principal, run_id, expand_inputs=True)
    log_path = platform.runs.files.log(run_id)
    end = _size(log_path)
    if run["status"] not in TERMINAL_STATUSES:  # a line being written: show it once it ends
        tail = _read(log_path, max(0, end - LOG_READ), end)
        end -= len(tail) - (tail.rfind(b"\n") + 1)
    log_start, lines = log_lines_before(log_path, end)
    artifacts = platform.runs.artifacts(principal, run_id)
    trace: list[dict[str, Any]] = []
    graph: list[dict[str, Any]] = []
    if run["type"] == "workflow":
        trace = platform.workflow_runs.trace(principal, run_id)
        definition = platform.workflow_runs.definition_of(principal, run_id).get("definition") or {}
        needs = {str(s.get("id")): _names(s.get("needs")) for s in definition.get("steps") or [] if isinstance(s, dict)}
        status_of: dict[str, str] = {}
        for step in trace:
            status_of.setdefault(step["step_id"], step["status"])
        graph = [{"id": sid, "needs": deps, "status": status_of.get(sid, "pending")} for sid, deps in needs.items()]
    else:
        raw = _read(platform.runs.files.trace(run_id), 0, 1 << 20).decode("utf-8", errors="replace")
        for line in raw.splitlines():
            if line.strip():
                try:
                    trace.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return {"run": run, "run_id": run_id, "log_lines": lines, "log_start": log_start, "log_end": end, "artifacts": artifacts,
            "trace": trace, "graph": graph, "terminal": run["status"] in TERMINAL_STATUSES,
            "can_confirm": CONFIRM_RUNS.allows(principal) and run["status"] == "awaiting_confirmation",
            "can_cancel": CANCEL_RUNS.allows(principal) and run["status"] not in TERMINAL_STATUSES,
            "can_rerun": CREATE_RUNS.allows(principal) and run["status"] in TERMINAL_STATUSES
            and run["type"] == "tool"}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, session: SessionDep) -> HTMLResponse:
    context = await in_thread(_run_context, platform_of(request), session.principal, run_id)
    return render(request, session, "runs/run.html", **context)


@router.get("/runs/{run_id}/status", response_class=HTMLResponse)
async def run_status(request: Request, run_id: str, session: SessionDep) -> HTMLResponse:
    """The status block alone: htmx polls it until the run ends."""
    run = await in_thread(platform_of(request).runs.get, session.principal, run_id)
    return render(request, session, "runs/_status.html", run=run, terminal=run["status"] in TERMINAL_STATUSES)


@router.get("/runs/{run_id}/logs/before", response_class=HTMLResponse)
async def earlier_logs(request: Request, run_id: str, session: SessionDep,
                       offset: int = Query(..., ge=0)) -> HTMLResponse:
    platform = platform_of(request)
    await in_thread(platform.runs.get, session.principal, run_id)
    start, lines = await in_thread(log_lines_before, platform.runs.files.log(run_id), offset)
    return render(request, session, "runs/_log_page.html", run_id=run_id, log_start=start, log_lines=lines)


@router.get("/runs/{run_id}/logs/stream", response_model=None)
async def follow_logs(request: Request, run_id: str, session: SessionDep,
                      offset: int = Query(0, ge=0)) -> StreamingResponse:
    """New log lines as SSE, from byte ``offset``: the API's follower, as this session's principal."""
    platform = platform_of(request)
    await in_thread(platform.runs.get, session.principal, run_id)
    last = request.headers.get("last-event-id")
    if last is not None and last.isdigit():
        offset = max(offset, int(last))
    return StreamingResponse(_follow(platform, session.principal, run_id, platform.runs.files.log(run_id), offset),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/runs/{run_id}/logs.txt", response_model=None)
async def download_logs(request: Request, run_id: str, session: SessionDep) -> Response:
    platform = platform_of(request)
    await in_thread(platform.runs.get, session.principal, run_id)
    path = platform.runs.files.log(run_id)
    if not path.exists():
        return Response(b"", media_type="text/plain; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{run_id}.log"'})
    return FileResponse(path, media_type="text/plain; charset=utf-8", filename=f"{run_id}.log")


# -- artifacts --------------------------------------------------------------------------------
# Shown in the page as images; anything else (HTML and SVG above all, which could run script
# in this origin) is only ever a download, and sandboxed even then.
INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def _media(row: Any, path: str) -> str:
    return row.content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"


@router.get("/runs/{run_id}/artifacts/{path:path}", response_model=None)
async def artifact_file(request: Request, run_id: str, path: str, session: SessionDep,
                        inline: bool = False) -> FileResponse:
    platform = platform_of(request)
    row = await in_thread(platform.runs.artifact, session.principal, run_id, path)
    media = _media(row, path)
    disposition = "inline" if inline and media in INLINE_IMAGES else "attachment"
    response = FileResponse(platform.runs.files.blob(row.blob_key), media_type=media,
                            filename=path.rsplit("/", 1)[-1], content_disposition_type=disposition)
    response.headers["content-security-policy"] = "sandbox; default-src 'none'"
    return response


@router.get("/runs/{run_id}/preview/{path:path}", response_class=HTMLResponse)
async def artifact_preview(request: Request, run_id: str, path: str, session: SessionDep) -> HTMLResponse:
    platform = platform_of(request)
    row = await in_thread(platform.runs.artifact, session.principal, run_id, path)
    media = _media(row, path)
    preview = await in_thread(preview_of, platform.runs.files.blob(row.blob_key), path, media,
                              image=media in INLINE_IMAGES)
    return render(request, session, "runs/preview.html", run_id=run_id, artifact_path=path, media=media, size=row.size,
                  preview=preview)


# -- buttons ----------------------------------------------------------------------------------
@router.post("/runs/{run_id}/confirm", response_model=None)
async def confirm(request: Request, run_id: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).runs.confirm, session.principal, run_id)
    return redirect(request, f"/ui/runs/{run_id}")


@router.post("/runs/{run_id}/cancel", response_model=None)
async def cancel(request: Request, run_id: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).runs.cancel, session.principal, run_id)
    return redirect(request, f"/ui/runs/{run_id}")


@router.post("/runs/{run_id}/rerun", response_model=None)
async def rerun(request: Request, run_id: str, session: WriteSessionDep) -> Response:
    run = await in_thread(lambda: platform_of(request).runs.rerun(session.principal, run_id, version="original"))
    return redirect(request, f"/ui/runs/{run['id']}")

"""/ui/data/query: the SQL editor. Results in a table (paged with the query service's
cursors, which pin the snapshots: every page reads the same data), ``explain`` output, and the
whole result as CSV — all through ``QueryService.run``, exactly as ``POST /query``.

Running a query is a POST with the session's CSRF token, not a link: a page on another site
cannot make a signed-in browser spend query time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from runyard.api.offload import in_thread
from runyard.services.errors import DomainError, ValidationFailed
from runyard.services.queries import QueryStream
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, render

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE_ROWS = 100
MAX_QUERY_CHARS = 100_000
STREAM_CHUNK = 1 << 20


@router.get("/data/query", response_class=HTMLResponse)
async def query_page(request: Request, session: SessionDep, q: str = "", namespace: str = "") -> HTMLResponse:
    return render(request, session, "data/query.html", query=q[:MAX_QUERY_CHARS], namespace=namespace[:64],
                  result=None)


@router.post("/data/query", response_class=HTMLResponse)
async def run_query(request: Request, session: WriteSessionDep, query: str = Form(""), namespace: str = Form(""),
                    cursor: str = Form(""), action: str = Form("run"), page: int = Form(1)) -> HTMLResponse:
    """Runs the query (``action=explain``: its plan instead); a query the service refuses shows
    its message above the editor, with the editor as it was."""
    explain = action == "explain"
    context: dict[str, Any] = {"query": query, "namespace": namespace, "result": None, "explain": explain,
                               "page": max(1, page)}
    try:
        if len(query) > MAX_QUERY_CHARS:
            raise ValidationFailed(f"a query is at most {MAX_QUERY_CHARS} characters", code="query_too_long")
        if not query.strip():
            raise ValidationFailed("write a query first", details={"field": "query"})
        context["result"] = await in_thread(lambda: platform_of(request).queries.run(
            session.principal, query=query, namespace=namespace.strip() or None, explain=explain,
            limit=PAGE_ROWS, cursor=cursor or None))
    except DomainError as exc:
        if exc.status in (401, 404):  # the session ended, or a hidden thing: the usual pages
            raise
        return render(request, session, "data/query.html", status=exc.status, error=exc.message, code=exc.code,
                      **context)
    return render(request, session, "data/query.html", **context)


@router.post("/data/query.csv", response_model=None)
async def download_csv(request: Request, session: WriteSessionDep, query: str = Form(""),
                       namespace: str = Form("")) -> Response:
    """The whole result as CSV, streamed from the query's output file."""
    if len(query) > MAX_QUERY_CHARS:
        raise ValidationFailed(f"a query is at most {MAX_QUERY_CHARS} characters", code="query_too_long")
    stream = await in_thread(lambda: platform_of(request).queries.run(
        session.principal, query=query, namespace=namespace.strip() or None, format="csv"))
    assert isinstance(stream, QueryStream)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            handle = await in_thread(stream.path.open, "rb")
            try:
                while chunk := await in_thread(handle.read, STREAM_CHUNK):
                    yield chunk
            finally:
                handle.close()
        finally:  # also when the browser went away mid-download
            await in_thread(stream.close)

    return StreamingResponse(chunks(), media_type=stream.content_type,
                             headers={"content-disposition": 'attachment; filename="query.csv"'})

"""/ui/tools: the tool list with search, a tool's page, and its run form generated from the
tool's input schema (forms.py). Running validates as the API does (RunService.create) and
nothing reaches the engine until every field is right."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from runyard.api.offload import in_thread
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.runs import CREATE_RUNS
from runyard.services.tools import version_view
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.ui.forms import Field, fields_of, inputs_of, place_errors
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 50
MAX_CODE_BYTES = 256 * 1024  # longer code is offered as text only, not highlighted
_formatter = HtmlFormatter(cssclass="code", wrapcode=True)


@router.get("/tools", response_class=HTMLResponse)
async def tool_list(request: Request, session: SessionDep, q: str = "", cursor: str | None = None) -> HTMLResponse:
    search = q.strip()[:200] or None
    page = await in_thread(lambda: platform_of(request).tools.list_for(
        session.principal, search=search, sort="name", order="asc", cursor=cursor or None, limit=PAGE))
    return render(request, session, "tools/list.html", tools=page.items, next_cursor=page.next_cursor, q=q)


def _code_of(platform: Platform, version_row: Any) -> Markup | None:
    """The version's code, highlighted (escaped by Pygments); None for an archive."""
    if version_row.source_kind == "zip" or not version_row.code_blob:
        return None
    data = platform.blobs.get_bytes(version_row.code_blob)[:MAX_CODE_BYTES]
    return Markup(highlight(data.decode("utf-8", errors="replace"), PythonLexer(), _formatter))  # noqa: S704


def _tool_page(platform: Platform, principal: Principal, name: str, version: int | None) -> dict[str, Any]:
    tool_row, version_row = platform.tools.visible(principal, name, version)
    tool = platform.tools.get_for(principal, name)
    shown = version_view(version_row)
    versions = platform.tools.versions_for(principal, name, cursor=None, limit=20).items
    return {"tool": tool, "shown": shown, "versions": versions, "code": _code_of(platform, version_row),
            "fields": fields_of(shown["input_schema"], shown.get("default_inputs")),
            "can_run": CREATE_RUNS.allows(principal)}


@router.get("/tools/{name}", response_class=HTMLResponse)
async def tool_page(request: Request, name: str, session: SessionDep, version: int | None = None) -> HTMLResponse:
    context = await in_thread(_tool_page, platform_of(request), session.principal, name, version)
    return render(request, session, "tools/tool.html", **context, form_errors=[])


@router.post("/tools/{name}/run", response_model=None)
async def run_tool(request: Request, name: str, session: WriteSessionDep) -> Response:
    platform = platform_of(request)
    CREATE_RUNS.check(session.principal)  # a viewer is refused before the form is read
    context = await in_thread(_tool_page, platform, session.principal, name, None)
    fields: list[Field] = context["fields"]
    form = await request.form()
    inputs, files, valid = inputs_of(fields, form)
    form_errors: list[str] = []
    if valid:
        try:
            run, _ = await in_thread(lambda: platform.runs.create(
                session.principal, tool=name, version=context["shown"]["version"], inputs=inputs, files=files,
                trigger="ui"))
            return redirect(request, f"/ui/runs/{run['id']}")
        except ValidationFailed as exc:
            errors = exc.details.get("errors") if isinstance(exc.details.get("errors"), list) else None
            if errors is None:
                field_name = exc.details.get("field")
                errors = [{"field": field_name or "", "message": exc.message}]
            form_errors = place_errors(fields, errors)
    return render(request, session, "tools/tool.html", status=400, **context, form_errors=form_errors,
                  invalid=True)


def code_css() -> str:
    """The highlighter's stylesheet (served as /ui/static/code.css)."""
    return _formatter.get_style_defs(".code")

"""/ui/workflows and /ui/triggers: the workflow list; a workflow's page (its step graph in
layers, the YAML of a version, a run form generated from its input schema); schedules with
their next fire times, webhooks, and email triggers with the log of the mail they received.

The workflow, run and trigger services decide who may see or start what, as for the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from runyard.api.offload import in_thread
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.workflow_runs import RUN_WORKFLOWS
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.ui.forms import Field, fields_of, inputs_of, place_errors
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 50
NEXT_TIMES = 3  # fire times shown per schedule
RECENT_RUNS = 10


def step_needs(definition: dict[str, Any]) -> dict[str, list[str]]:
    """Each step's id → the ids it waits for (``needs`` as written: one id or a list)."""
    out: dict[str, list[str]] = {}
    for step in definition.get("steps") or []:
        if isinstance(step, dict) and step.get("id") is not None:
            needs = step.get("needs")
            out[str(step["id"])] = [needs] if isinstance(needs, str) else [str(n) for n in needs or []]
    return out


def layers(needs: dict[str, list[str]]) -> list[list[str]]:
    """The steps in columns: a step sits one column right of the furthest step it needs, so
    every edge points rightwards. Unknown ids and cycles (which the service refuses on save)
    put a step in the first column rather than loop."""
    depth: dict[str, int] = {}

    def place(step: str, seen: frozenset[str]) -> int:
        if step in depth:
            return depth[step]
        known = [n for n in needs.get(step, []) if n in needs and n not in seen]
        depth[step] = 1 + max((place(n, seen | {step}) for n in known), default=-1)
        return depth[step]

    for step in needs:
        place(step, frozenset())
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in needs:  # in the definition's order within a column
        columns[depth[step]].append(step)
    return columns


@router.get("/workflows", response_class=HTMLResponse)
async def workflow_list(request: Request, session: SessionDep, q: str = "", cursor: str | None = None
                        ) -> HTMLResponse:
    search = q.strip()[:200] or None
    page = await in_thread(lambda: platform_of(request).workflows.list(
        session.principal, search=search, sort="name", order="asc", cursor=cursor or None, limit=PAGE))
    return render(request, session, "workflows/list.html", workflows=page.items, next_cursor=page.next_cursor, q=q)


def _workflow_page(platform: Platform, principal: Principal, ref: str, version: int | None) -> dict[str, Any]:
    workflow = platform.workflows.get(principal, ref)
    published = version if version is not None else workflow["latest_version"]  # None: only a draft
    shown = platform.workflows.version(principal, ref, published) if published is not None else None
    definition = (shown or workflow).get("definition") or {}
    source = (shown or workflow).get("source") or ""
    needs = step_needs(definition)
    uses = {str(s.get("id")): s.get("uses") for s in definition.get("steps") or [] if isinstance(s, dict)}
    versions = platform.workflows.versions(principal, ref, cursor=None, limit=20).items
    recent = platform.runs.list(principal, source=workflow["name"], run_type="workflow",
                                limit=RECENT_RUNS).items
    schema = definition.get("inputs") if isinstance(definition.get("inputs"), dict) else {}
    return {"workflow": workflow, "shown": shown, "source": source, "columns": layers(needs), "needs": needs,
            "uses": uses, "versions": versions, "recent": recent, "fields": fields_of(schema),
            "can_run": RUN_WORKFLOWS.allows(principal) and shown is not None}


@router.get("/workflows/{ref}", response_class=HTMLResponse)
async def workflow_page(request: Request, ref: str, session: SessionDep, version: int | None = None
                        ) -> HTMLResponse:
    context = await in_thread(_workflow_page, platform_of(request), session.principal, ref, version)
    return render(request, session, "workflows/workflow.html", **context, form_errors=[])


@router.post("/workflows/{ref}/run", response_model=None)
async def run_workflow(request: Request, ref: str, session: WriteSessionDep, version: int | None = None
                       ) -> Response:
    platform = platform_of(request)
    RUN_WORKFLOWS.check(session.principal)  # a viewer is refused before the form is read
    context = await in_thread(_workflow_page, platform, session.principal, ref, version)
    if context["shown"] is None:
        raise ValidationFailed("this workflow has no published version to run", code="invalid_workflow",
                               details={"field": "workflow"})
    fields: list[Field] = context["fields"]
    inputs, files, valid = inputs_of(fields, await request.form())
    form_errors: list[str] = []
    if valid:
        try:
            run, _ = await in_thread(lambda: platform.workflow_runs.start(
                session.principal, workflow=context["workflow"]["name"], version=context["shown"]["version"],
                inputs=inputs, files=files, trigger="ui"))
            return redirect(request, f"/ui/runs/{run['id']}")
        except ValidationFailed as exc:
            errors = exc.details.get("errors") if isinstance(exc.details.get("errors"), list) else None
            form_errors = place_errors(fields, errors or [{"field": exc.details.get("field") or "",
                                                           "message": exc.message}])
    return render(request, session, "workflows/workflow.html", status=400, **context, form_errors=form_errors,
                  invalid=True)


# -- triggers -----------------------------------------------------------------------------------
def _triggers(platform: Platform, principal: Principal) -> dict[str, Any]:
    schedules = platform.schedules.list(principal, cursor=None, limit=PAGE).items
    for schedule in schedules:
        schedule["next_times"] = platform.schedules.next(principal, schedule["id"], NEXT_TIMES)["times"] \
            if schedule["enabled"] else []
    return {"schedules": schedules, "webhooks": platform.webhooks.list(principal, cursor=None, limit=PAGE).items,
            "email_triggers": platform.email_triggers.list(principal, cursor=None, limit=PAGE).items}


@router.get("/triggers", response_class=HTMLResponse)
async def trigger_list(request: Request, session: SessionDep) -> HTMLResponse:
    context = await in_thread(_triggers, platform_of(request), session.principal)
    return render(request, session, "workflows/triggers.html", **context)


@router.get("/triggers/email/{trigger_id}", response_class=HTMLResponse)
async def email_trigger_page(request: Request, trigger_id: str, session: SessionDep, cursor: str | None = None
                             ) -> HTMLResponse:
    platform = platform_of(request)
    trigger = await in_thread(platform.email_triggers.get, session.principal, trigger_id)
    page = await in_thread(lambda: platform.email_triggers.list_records(session.principal, trigger_id,
                                                                        cursor=cursor or None, limit=PAGE))
    return render(request, session, "workflows/email_trigger.html", trigger=trigger, records=page.items,
                  next_cursor=page.next_cursor)

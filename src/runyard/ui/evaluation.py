"""Evaluation pages: a run's expected output beside its comparison, with its feedback
(/ui/runs/{id}/evaluation); evaluation batches with their counts, mean score and regressions
(/ui/batches); run search with the filter grammar of ``POST /runs/search`` (/ui/search).

The expected, comparison, feedback, batch and search services decide who may see or change
what, as for the API."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from runyard.api.offload import in_thread
from runyard.schemas.run_search import MAX_PROPS, SEARCH_OPS, RunSearchRequest
from runyard.services.access import Principal
from runyard.services.errors import NotFound, ValidationFailed
from runyard.services.eval_batches import CANCEL_BATCHES
from runyard.services.expected import CHANGE_EXPECTED
from runyard.services.feedback import GIVE_FEEDBACK, MAX_LABELS
from runyard.services.run_search import SELECTABLE, RunSearchService
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 50
SEARCH_PAGE = 50
SEARCH_ROWS = 3  # empty condition rows the search form offers besides those filled
DEFAULT_COLUMNS = ("id", "tool_name", "status", "trigger", "created_at")


# -- one run: expected output, comparison, feedback -------------------------------------------
def _maybe(call: Any, *args: Any) -> Any:
    """``call(*args)``, or None when the thing does not exist yet (no expected output, no
    feedback). The run itself not being visible is raised before (404 page)."""
    try:
        return call(*args)
    except NotFound as exc:
        if exc.code in ("expected_not_found", "feedback_not_found"):
            return None
        raise


def _evaluation(platform: Platform, principal: Principal, run_id: str) -> dict[str, Any]:
    run = platform.runs.get(principal, run_id)
    expected = _maybe(platform.expected.get, principal, run_id)
    comparison = _maybe(platform.comparison.comparison, principal, run_id) if expected else None
    feedback = _maybe(platform.feedback.get, principal, run_id)
    return {"run": run, "expected": expected, "comparison": comparison, "feedback": feedback,
            "can_set_expected": CHANGE_EXPECTED.allows(principal) and run["status"] == "succeeded",
            "can_give_feedback": GIVE_FEEDBACK.allows(principal)}


@router.get("/runs/{run_id}/evaluation", response_class=HTMLResponse)
async def evaluation_page(request: Request, run_id: str, session: SessionDep) -> HTMLResponse:
    context = await in_thread(_evaluation, platform_of(request), session.principal, run_id)
    return render(request, session, "evaluation/run.html", **context)


@router.post("/runs/{run_id}/expected", response_model=None)
async def expect_output(request: Request, run_id: str, session: WriteSessionDep) -> Response:
    """The run's output (and nothing else) becomes its example's expected output."""
    await in_thread(lambda: platform_of(request).expected.save(session.principal, run_id, copy_output=True))
    return redirect(request, f"/ui/runs/{run_id}/evaluation")


def _labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.replace("\n", ",").split(",") if label.strip()]
    if len(labels) > MAX_LABELS:  # the service says the same; refusing here spares the split
        raise ValidationFailed(f"at most {MAX_LABELS} labels", code="invalid_feedback", details={"field": "labels"})
    return labels


@router.post("/runs/{run_id}/feedback", response_model=None)
async def give_feedback(request: Request, run_id: str, session: WriteSessionDep, rating: str = Form(""),
                        comment: str = Form(""), labels: str = Form("")) -> Response:
    changes: dict[str, Any] = {"rating": rating or None, "comment": comment.strip() or None,
                               "labels": _labels(labels)}
    await in_thread(platform_of(request).feedback.update, session.principal, run_id, changes)
    return redirect(request, f"/ui/runs/{run_id}/evaluation")


@router.post("/runs/{run_id}/feedback/resolve", response_model=None)
async def resolve_feedback(request: Request, run_id: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).feedback.resolve, session.principal, run_id)
    return redirect(request, f"/ui/runs/{run_id}/evaluation")


# -- batches ------------------------------------------------------------------------------------
@router.get("/batches", response_class=HTMLResponse)
async def batch_list(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    page = await in_thread(lambda: platform_of(request).eval_batches.list(session.principal, cursor=cursor or None,
                                                                          limit=PAGE))
    return render(request, session, "evaluation/batches.html", batches=page.items, next_cursor=page.next_cursor)


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
async def batch_page(request: Request, batch_id: str, session: SessionDep) -> HTMLResponse:
    platform = platform_of(request)
    batch = await in_thread(platform.eval_batches.get, session.principal, batch_id)
    runs = await in_thread(lambda: platform.runs.list(session.principal, batch_id=batch_id, limit=PAGE).items)
    return render(request, session, "evaluation/batch.html", batch=batch, runs=runs,
                  can_cancel=CANCEL_BATCHES.allows(session.principal) and batch["status"] == "running")


@router.post("/batches/{batch_id}/cancel", response_model=None)
async def cancel_batch(request: Request, batch_id: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).eval_batches.cancel, session.principal, batch_id)
    return redirect(request, f"/ui/batches/{batch_id}")


# -- run search ---------------------------------------------------------------------------------
def prop_value(op: str, raw: str) -> Any:
    """A condition's typed value from the form's text, as the CLI's ``--where`` reads it:
    JSON when it parses (``5``, ``true``, ``"5"``), else the text; a comma-separated list for
    in/nin; the text itself for contains/startswith; exists: true unless ``false``."""
    raw = raw.strip()
    if op == "exists":
        return raw.lower() != "false"
    if op in ("contains", "startswith"):
        return raw
    if op in ("in", "nin"):
        return [_json_or_text(part.strip()) for part in raw.split(",") if part.strip()]
    return _json_or_text(raw)


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _search(platform: Platform, principal: Principal, body: RunSearchRequest) -> dict[str, Any]:
    return RunSearchService(platform).search(principal, body)


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, session: SessionDep, order: str = "", offset: int = 0) -> HTMLResponse:
    query = request.query_params
    rows = [{"field": f.strip(), "op": o, "value": v} for f, o, v in
            zip(query.getlist("field"), query.getlist("op"), query.getlist("value"), strict=False)][:MAX_PROPS]
    filled = [r for r in rows if r["field"]]
    columns = [c for c in query.getlist("select") if c] or list(DEFAULT_COLUMNS)
    asked = bool(filled) or "select" in query
    result, error = None, None
    if asked:
        try:
            body = RunSearchRequest(props=[{"field": r["field"], "op": r["op"], "value": prop_value(r["op"], r["value"])}
                                           for r in filled],
                                    select=columns, order=order.strip() or None, limit=SEARCH_PAGE,
                                    offset=offset, with_total_count=True)
            result = await in_thread(_search, platform_of(request), session.principal, body)
        except ValidationError as exc:
            error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        except ValidationFailed as exc:
            error = exc.message
    shown_rows = filled + [{"field": "", "op": "eq", "value": ""}] * SEARCH_ROWS
    next_url = None
    if result and result["next_offset"] is not None:
        kept = [(k, v) for k, v in query.multi_items() if k != "offset"]
        next_url = "/ui/search?" + urlencode([*kept, ("offset", str(result["next_offset"]))])
    return render(request, session, "evaluation/search.html", status=400 if error else 200, rows=shown_rows,
                  ops=SEARCH_OPS, selectable=SELECTABLE, columns=columns, order=order, result=result, error=error,
                  next_url=next_url)

"""/ui/synth: synthetic data templates — the list, a template's YAML editor with a live preview
of its rows as the user types, saving (a new version), and generating a download in any format
the synth engine writes. All through ``TemplateService`` as the API (``/templates``) does:
any key reads and previews; saving and generating need a member, and the service says so."""

from __future__ import annotations

import re
from typing import Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from runyard import synth
from runyard.api.offload import in_thread
from runyard.api.templates import GenerationStream
from runyard.services.access import Principal
from runyard.services.errors import DomainError, Unauthenticated, ValidationFailed
from runyard.services.templates import CREATE_TEMPLATES, GENERATE_DATA, UPDATE_TEMPLATES, view_document
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 100
PREVIEW_ROWS = 10
MAX_DOCUMENT_CHARS = 64 * 1024  # a template is a few fields; a longer editor is refused, not parsed
UPDATABLE = ("name", "description", "locale", "fields")  # what PATCH /templates/{ref} takes
EXAMPLE = """name: customers
locale: en_US
fields:
  - name: id
    generator: sequence
  - name: name
    generator: person.full_name
  - name: email
    generator: person.email
  - name: tier
    generator: choice
    values: [free, pro, enterprise]
    weights: [0.7, 0.25, 0.05]
"""


def _document(text: str) -> Any:
    """The editor's text as a document (YAML or JSON), refused if too long or not a mapping."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise ValidationFailed(f"a template is at most {MAX_DOCUMENT_CHARS} characters", code="template_too_long",
                               details={"field": "document"})
    try:
        document = synth.load_document(text)
    except synth.SynthError as exc:
        raise ValidationFailed(exc.message, code=exc.code, details={"field": "document"}) from None
    if not isinstance(document, dict):
        raise ValidationFailed("a template is a mapping: name, locale, fields", code="invalid_template",
                               details={"field": "document"})
    return document


def as_yaml(view: dict[str, Any]) -> str:
    document = {k: v for k, v in view_document(view).items() if k != "seeding"}  # the server's, not the user's
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@router.get("/synth", response_class=HTMLResponse)
async def templates_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    page = await in_thread(lambda: platform_of(request).templates.list(
        session.principal, cursor=cursor or None, limit=PAGE))
    return render(request, session, "synth/list.html", templates=page.items, next_cursor=page.next_cursor,
                  can_create=CREATE_TEMPLATES.allows(session.principal))


def _editor(principal: Principal, **context: Any) -> dict[str, Any]:
    return {"formats": synth.FORMATS, "can_create": CREATE_TEMPLATES.allows(principal),
            "can_save": UPDATE_TEMPLATES.allows(principal), "can_generate": GENERATE_DATA.allows(principal),
            "tpl": None, "versions": [], "error": None, "preview": None, **context}


def _preview(platform: Platform, principal: Principal, text: str) -> dict[str, Any]:
    return platform.templates.preview_document(principal, _document(text), seed=1, rows=PREVIEW_ROWS)


@router.get("/synth/new", response_class=HTMLResponse)
async def new_template(request: Request, session: SessionDep) -> HTMLResponse:
    preview = await in_thread(_preview, platform_of(request), session.principal, EXAMPLE)
    return render(request, session, "synth/template.html", **_editor(session.principal, text=EXAMPLE,
                                                                       preview=preview))


@router.post("/synth/new", response_class=HTMLResponse, response_model=None)
async def create_template(request: Request, session: WriteSessionDep, document: str = Form("")) -> Response:
    platform = platform_of(request)
    CREATE_TEMPLATES.check(session.principal)
    try:
        created = await in_thread(lambda: platform.templates.create(session.principal, _document(document)))
    except DomainError as exc:
        if isinstance(exc, Unauthenticated) or exc.status in (401, 403, 404):
            raise
        return render(request, session, "synth/template.html", status=exc.status,
                      **_editor(session.principal, text=document, error=exc.message))
    return redirect(request, f"/ui/synth/{created['id']}")


def _template_context(platform: Platform, principal: Principal, ref: str, version: int | None) -> dict[str, Any]:
    view = platform.templates.get(principal, ref, version)
    versions = platform.templates.versions(principal, view["id"], cursor=None, limit=20).items
    text = as_yaml(view)
    return _editor(principal, tpl=view, versions=versions, text=text,
                   preview=platform.templates.preview_document(principal, view_document(view), seed=1,
                                                               rows=PREVIEW_ROWS))


@router.get("/synth/{ref}", response_class=HTMLResponse)
async def template_page(request: Request, ref: str, session: SessionDep, version: int | None = None) -> HTMLResponse:
    context = await in_thread(_template_context, platform_of(request), session.principal, ref, version)
    return render(request, session, "synth/template.html", **context)


@router.post("/synth/preview", response_class=HTMLResponse)
async def preview(request: Request, session: WriteSessionDep, document: str = Form("")) -> HTMLResponse:
    """The editor's live preview (htmx, as the user types): rows, or the error beside the editor."""
    try:
        found = await in_thread(_preview, platform_of(request), session.principal, document)
    except ValidationFailed as exc:
        return render(request, session, "synth/_preview.html", error=exc.message, preview=None)
    return render(request, session, "synth/_preview.html", error=None, preview=found)


@router.post("/synth/{ref}/save", response_class=HTMLResponse, response_model=None)
async def save_template(request: Request, ref: str, session: WriteSessionDep, document: str = Form("")) -> Response:
    """A new version (none when nothing changed), as ``PATCH /templates/{ref}``."""
    platform = platform_of(request)
    UPDATE_TEMPLATES.check(session.principal)
    try:
        patch = {k: v for k, v in _document(document).items() if k != "seeding"}
        saved = await in_thread(platform.templates.update, session.principal, ref, patch)
    except DomainError as exc:
        if isinstance(exc, Unauthenticated) or exc.status in (401, 403, 404):
            raise
        context = await in_thread(_template_context, platform, session.principal, ref, None)
        context.update(text=document, error=exc.message)
        return render(request, session, "synth/template.html", status=exc.status, **context)
    return redirect(request, f"/ui/synth/{saved['id']}")


@router.post("/synth/{ref}/generate", response_model=None)
async def generate(request: Request, ref: str, session: WriteSessionDep, format: str = Form("csv"),
                   count: int = Form(100), seed: str = Form(""), version: int | None = Form(None)) -> Response:
    """The rows as a download, streamed as ``POST /templates/{ref}/generate`` streams them."""
    platform = platform_of(request)
    GENERATE_DATA.check(session.principal)
    if format not in synth.FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(synth.FORMATS)}", code="invalid_format",
                               details={"field": "format"})
    body: dict[str, Any] = {"count": count}
    if seed.strip():  # a number is a numeric seed, as in the API's JSON; other text a string seed
        body["seed"] = int(seed) if re.fullmatch(r"-?\d{1,18}", seed.strip()) else seed.strip()[:100]
    if version is not None:
        body["version"] = version
    generation = await in_thread(platform.templates.prepare, session.principal, ref, body, fmt=format)
    plan = generation.plan
    headers = {"X-Runyard-Seed": str(plan.seed), "X-Runyard-Template-Version": str(plan.version),
               "Content-Disposition": f'attachment; filename="{plan.template.name}.{generation.encoder.extension}"'}
    return GenerationStream(generation.stream(), media_type=generation.media_type, headers=headers)

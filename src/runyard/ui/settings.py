"""/ui/settings: API tokens (create, showing the key once; list; revoke) and secrets (set,
masked list, delete). The token and secret services decide who may do what, as for the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from runyard.api.offload import in_thread
from runyard.services.access import ROLES, rank
from runyard.services.errors import ValidationFailed
from runyard.services.secrets import DELETE_SECRETS, SET_SECRETS
from runyard.services.tokens import MANAGE_TOKENS
from runyard.ui.core import SessionDep, UiRoute, UiSession, WriteSessionDep, platform_of, redirect, render

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 100


def _tokens_context(request: Request, session: UiSession, cursor: str | None) -> dict[str, Any]:
    principal = session.principal
    can_manage = MANAGE_TOKENS.allows(principal)
    items: list[dict[str, Any]] = []
    next_cursor = None
    if can_manage:
        page = platform_of(request).tokens.list(principal, cursor=cursor or None, limit=PAGE)
        items, next_cursor = page.items, page.next_cursor
    return {"tokens": items, "next_cursor": next_cursor, "can_manage": can_manage,
            "roles": [r for r in ROLES if rank(r) <= rank(principal.role)], "current_token": principal.token_id}


@router.get("/settings/tokens", response_class=HTMLResponse)
async def tokens_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_tokens_context, request, session, cursor)
    return render(request, session, "settings/tokens.html", **context)


def _expiry(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("expires must be a date and time", details={"field": "expires_at"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.post("/settings/tokens", response_class=HTMLResponse, response_model=None)
async def create_token(request: Request, session: WriteSessionDep, name: str = Form(""), role: str = Form("viewer"),
                       expires_at: str = Form("")) -> Response:
    platform = platform_of(request)
    error = None
    created = None
    try:
        when = _expiry(expires_at)
        created = await in_thread(lambda: platform.tokens.create(session.principal, name=name.strip(), role=role,
                                                                 expires_at=when))
    except ValidationFailed as exc:
        error = exc.message
    context = await in_thread(_tokens_context, request, session, None)
    # The key is in this response only: it is stored hashed and never shown again.
    return render(request, session, "settings/tokens.html", status=201 if created else 400, created=created,
                  error=error, form={"name": name, "role": role, "expires_at": expires_at}, **context)


@router.post("/settings/tokens/{token_id}/revoke", response_model=None)
async def revoke_token(request: Request, token_id: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).tokens.delete, session.principal, token_id)
    return redirect(request, "/ui/settings/tokens")


def _secrets_context(request: Request, session: UiSession, cursor: str | None) -> dict[str, Any]:
    principal = session.principal
    page = platform_of(request).secrets.list(principal, cursor=cursor or None, limit=PAGE)
    return {"secrets": page.items, "next_cursor": page.next_cursor, "can_set": SET_SECRETS.allows(principal),
            "can_delete": DELETE_SECRETS.allows(principal)}


@router.get("/settings/secrets", response_class=HTMLResponse)
async def secrets_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_secrets_context, request, session, cursor)
    return render(request, session, "settings/secrets.html", **context)


@router.post("/settings/secrets", response_class=HTMLResponse, response_model=None)
async def set_secret(request: Request, session: WriteSessionDep, name: str = Form(""), value: str = Form(""),
                     description: str = Form("")) -> Response:
    platform = platform_of(request)
    try:
        await in_thread(lambda: platform.secrets.put(session.principal, name.strip(), value=value,
                                                     description=description.strip() or None, force=True))
    except ValidationFailed as exc:
        context = await in_thread(_secrets_context, request, session, None)
        return render(request, session, "settings/secrets.html", status=400, error=exc.message,
                      error_field=exc.details.get("field"), form={"name": name, "description": description},
                      **context)
    return redirect(request, "/ui/settings/secrets")


@router.post("/settings/secrets/{name}/delete", response_model=None)
async def delete_secret(request: Request, name: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).secrets.delete, session.principal, name)
    return redirect(request, "/ui/settings/secrets")

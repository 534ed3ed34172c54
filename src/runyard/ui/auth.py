"""/ui/sign-in and /ui/sign-out: a session from an API key or a user's password.

The sign-in form carries its own CSRF value (a random cookie the form must echo), so no other
site can sign a browser in to an account of its choosing.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from runyard.api.offload import in_thread
from runyard.services.errors import DomainError, PermissionDenied, Unauthenticated, ValidationFailed
from runyard.ui.core import (
    COOKIE,
    UI_PREFIX,
    UiRoute,
    WriteSessionDep,
    clear_session_cookie,
    over_https,
    platform_of,
    redirect,
    render,
    safe_next,
    set_session_cookie,
)

router = APIRouter(route_class=UiRoute, include_in_schema=False)
SIGN_IN_COOKIE = "runyard_ui_sign_in"
SIGN_IN_PATH = f"{UI_PREFIX}/sign-in"


def _form(request: Request, *, next_path: str, status: int = 200, error: str | None = None,
          username: str = "", method: str = "key") -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    response = render(request, None, "auth/sign_in.html", status=status, next_path=next_path, error=error,
                      username=username, method=method, sign_in_csrf=nonce)
    response.set_cookie(SIGN_IN_COOKIE, nonce, path=SIGN_IN_PATH, httponly=True, samesite="strict",
                        secure=over_https(request), max_age=3600)
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _form(request, next_path=safe_next(next))


@router.post("/sign-in", response_class=HTMLResponse, response_model=None)
async def sign_in(request: Request, method: str = Form("key"), api_key: str = Form(""),
                  username: str = Form(""), password: str = Form(""), next: str = Form(UI_PREFIX),
                  csrf_token: str = Form("")) -> Response:
    next_path = safe_next(next)
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        refused = PermissionDenied("the sign-in form expired; try again", code="ui_csrf_failed")
        return _form(request, next_path=next_path, status=403, error=f"{refused.message} ({refused.code})",
                     method=method)
    sessions = platform_of(request).ui_sessions
    client_ip = request.client.host if request.client else "unknown"
    agent = request.headers.get("user-agent", "")
    try:
        if method == "password":
            if not username or not password:
                raise ValidationFailed("give your username and password")
            signed = await in_thread(sessions.sign_in_with_password, platform_of(request).workspace_id,
                                     username.strip(), password, client_ip=client_ip, user_agent=agent)
        else:
            if not api_key.strip():
                raise ValidationFailed("paste an API key")
            signed = await in_thread(sessions.sign_in_with_key, api_key.strip(), client_ip=client_ip,
                                     user_agent=agent)
    except Unauthenticated as exc:
        message = "wrong username or password" if method == "password" else "that key is not valid"
        if exc.code == "expired_api_key":
            message = "that key has expired"
        return _form(request, next_path=next_path, status=401, error=message, username=username, method=method)
    except DomainError as exc:
        response = _form(request, next_path=next_path, status=exc.status, error=exc.message, username=username,
                         method=method)
        if (retry := getattr(exc, "retry_after", None)) is not None:
            response.headers["Retry-After"] = str(max(1, int(retry + 0.999)))
        return response
    response = redirect(request, next_path)
    set_session_cookie(request, response, signed.cookie)
    response.delete_cookie(SIGN_IN_COOKIE, path=SIGN_IN_PATH)
    return response


@router.post("/sign-out", response_model=None)
async def sign_out(request: Request, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).ui_sessions.sign_out, request.cookies.get(COOKIE))
    response = redirect(request, SIGN_IN_PATH)
    clear_session_cookie(request, response)
    return response

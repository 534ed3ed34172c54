"""What every UI page shares: templates, the session, CSRF, security headers, error pages.

A page module builds an ``APIRouter(route_class=UiRoute)`` and writes handlers like::

    @router.get("/things")
    async def things(request: Request, session: SessionDep) -> HTMLResponse:
        items = await in_thread(platform_of(request).things.list, session.principal, ...)
        return render(request, session, "things/list.html", items=items)

and, for anything that changes state, takes ``WriteSessionDep`` instead (the CSRF token is
checked). Services authorize as for the API; ``UiRoute`` turns their errors into pages:
401 → the sign-in page (then back here), 404 → the not-found page, others → an error page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from runyard.api.offload import in_thread
from runyard.services.errors import DomainError, PermissionDenied, Unauthenticated
from runyard.services.ui_sessions import UiSession, csrf_matches
from runyard.timeutil import parse_rfc3339, utcnow
from runyard.wiring import Platform

UI_PREFIX = "/ui"
COOKIE = "runyard_ui"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
HERE = Path(__file__).resolve().parent

# No inline script or style anywhere: a script injected into a page cannot run.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                        trim_blocks=True, lstrip_blocks=True)
templates.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)


def platform_of(request: Request) -> Platform:
    return request.app.state.platform


# -- where a user may be sent back to ---------------------------------------------------------
def safe_next(target: str | None) -> str:
    """``target`` if it is a path of the UI on this server, else the UI's home: never another
    host (``//evil``, ``https://…``, ``/\\evil``), never a scheme (``javascript:``)."""
    if not target or any(ch in target for ch in "\\\r\n\t") or not target.startswith(UI_PREFIX):
        return UI_PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(UI_PREFIX):
        return UI_PREFIX
    return target


def sign_in_url(next_path: str) -> str:
    return f"{UI_PREFIX}/sign-in?next={quote(safe_next(next_path), safe='/')}"


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, url: str) -> Response:
    """See ``url``: a 303 for a page, an ``HX-Redirect`` for an htmx request."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# -- the session --------------------------------------------------------------------------------
async def current_session(request: Request) -> UiSession:
    """The request's live session (401 ``ui_session_required``/``ui_session_expired`` else:
    ``UiRoute`` sends the browser to sign in, then back)."""
    session: UiSession = await in_thread(platform_of(request).ui_sessions.resolve, request.cookies.get(COOKIE))
    request.state.ui_session = session
    return session


async def writing_session(request: Request) -> UiSession:
    """The session, for a request that changes something: its CSRF token must come with it,
    in the form (``csrf_token``) or, from htmx, the ``X-CSRF-Token`` header."""
    session = await current_session(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not csrf_matches(request.cookies.get(COOKIE, ""), sent):
        raise PermissionDenied("this form is stale or did not come from this site: reload the page and try again",
                               code="ui_csrf_failed")
    return session


SessionDep = Annotated[UiSession, Depends(current_session)]
WriteSessionDep = Annotated[UiSession, Depends(writing_session)]


# -- rendering ----------------------------------------------------------------------------------
def render(request: Request, session: UiSession | None, template: str, *, status: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    page = templates.get_template(template).render(
        request=request, session=session, principal=session.principal if session else None,
        csrf_token=session.csrf_token if session else "", path=request.url.path, now=utcnow(),
        section=(request.url.path.split("/") + ["", ""])[2], **context)
    return HTMLResponse(page, status_code=status, headers=headers)


_TITLES = {400: "That did not work", 403: "Not allowed", 404: "Not found", 409: "Conflict",
           413: "Too large", 429: "Slow down"}


def error_page(request: Request, exc: DomainError) -> Response:
    session = getattr(request.state, "ui_session", None)
    if exc.status == 404:
        # Whatever was asked for, and whether it exists but is hidden: the same page.
        return render(request, session, "errors/not_found.html", status=404)
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return render(request, session, "errors/error.html", status=exc.status, headers=headers,
                  title=_TITLES.get(exc.status, "Error"), message=exc.message, code=exc.code)


class UiRoute(APIRoute):
    """A UI route: domain errors become pages, every response carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def ui_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Unauthenticated as exc:
                if exc.code in ("ui_session_required", "ui_session_expired"):
                    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    if request.method != "GET":
                        back = request.headers.get("hx-current-url") or UI_PREFIX
                        back = urlsplit(back).path or UI_PREFIX
                    response = redirect(request, sign_in_url(back))
                else:
                    response = error_page(request, exc)
            except DomainError as exc:
                response = error_page(request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("cache-control", "no-store")
            return response

        return ui_handler


def over_https(request: Request) -> bool:
    """Whether the browser reached us over TLS (directly, or through a proxy that says so: a
    spoofed header only makes the cookie stricter)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_session_cookie(request: Request, response: Response, cookie: str) -> None:
    response.set_cookie(COOKIE, cookie, path=UI_PREFIX, httponly=True, samesite="lax", secure=over_https(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path=UI_PREFIX, httponly=True, samesite="lax", secure=over_https(request))


def _duration(run: dict[str, Any]) -> str:
    """How long a run took (or has been running), for people: "1.25 s", "3 min 4 s"."""
    if not run.get("started_at"):
        return ""
    start = parse_rfc3339(run["started_at"])
    end = parse_rfc3339(run["finished_at"]) if run.get("finished_at") else utcnow()
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


templates.filters["duration"] = _duration

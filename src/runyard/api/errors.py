"""The error envelope: ``{"error": {"code", "message", "details", "request_id"}}``."""

from __future__ import annotations

import errno
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from runyard.api.openapi import iter_routes
from runyard.api.responses import JSON
from runyard.services.errors import DomainError, RateLimited

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
               422: "validation_error", 429: "rate_limited"}


INTERNAL_MESSAGE = "internal server error; quote the request id when reporting it"


def error_payload(request_id: str | None, code: str, message: str,
                  details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}, "request_id": request_id}}


def domain_error_headers(exc: DomainError) -> dict[str, str] | None:
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(max(1, int(round(exc.retry_after))))}
    return None


def error_response(request: Request, status: int, code: str, message: str,
                   details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSON:
    body = error_payload(getattr(request.state, "request_id", None), code, message, details)
    return JSON(body, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the application serves at the request's path."""
    methods: set[str] = set()
    for route in iter_routes(request.app):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods.update(route.methods)
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSON:
        return error_response(request, exc.status, exc.code, exc.message, exc.details, domain_error_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSON:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
            errors.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return error_response(request, 400, "validation_error", f"invalid request: {summary}", {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSON:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; a path served by
            # several routes (GET and POST /runs) allows the methods of all of them.
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return error_response(request, exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSON:
        if out_of_space(exc):  # the disk (or the database's) is full: nothing was written
            log.error("no space left on %s %s: %s", request.method, request.url.path, exc)
            return error_response(request, 507, "insufficient_storage",
                                  "the server has no space left to store this; nothing was changed")
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", INTERNAL_MESSAGE)


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk is full: ENOSPC, or SQLite's and
    PostgreSQL's own words for it."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        text = str(current).lower()
        if "database or disk is full" in text or "no space left on device" in text \
                or "could not extend file" in text:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False

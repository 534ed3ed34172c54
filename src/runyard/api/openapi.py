"""The OpenAPI description: the error envelope on every route, bearer auth, and ``/docs``
served from the package (no CDN: a self-hosted server must work air-gapped).

Routers document their error statuses with :func:`error_responses`; :func:`install` adds
the bearer ``securitySchemes`` entry (so the Authorize button of ``/docs`` works), marks
every operation that authenticates, and serves Swagger UI from ``fastapi-offline``'s
bundled assets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse

from runyard.api.deps import get_principal
from runyard.services.pagination import MAX_LIMIT
from runyard.services.secrets import NAME_RE as SECRET_NAME_RE

DOCS_URL = "/docs"
DOCS_ASSETS_URL = "/docs/assets"
SECURITY_SCHEME = "bearerAuth"


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable error code (see docs/errors.md).")
    message: str = Field(description="What went wrong, for a human.")
    details: dict[str, Any] = Field(description="Structured context, e.g. `field` or `errors: [{field, message}]`.")
    request_id: str | None = Field(description="The request's `X-Request-ID`; quote it when reporting a problem.")


class ErrorEnvelope(BaseModel):
    """Every non-2xx answer: ``{"error": {"code", "message", "details", "request_id"}}``."""

    error: ErrorBody


_DESCRIPTIONS = {
    400: "Bad request: a parameter or the body is invalid (`validation_error`, `invalid_json`, ...).",
    401: "Missing, unknown or expired API key (`unauthenticated`).",
    403: "The key's role or restrictions do not allow this (`permission_denied`).",
    404: "No such resource, or not visible to this key (`not_found`, ...).",
    409: "Conflicts with the current state (`conflict`, `secret_exists`, `idempotency_key_reused`, ...).",
    413: "The request body is too large (`payload_too_large`).",
    415: "Unsupported media type (`unsupported_media_type`).",
    429: "Rate limit reached (`rate_limited`); retry after `Retry-After` seconds.",
    500: "The work failed on the server's side (`job_failed`, ...).",
    502: "A service the server called failed: the language-model provider (`llm_error`, `llm_invalid_response`).",
    504: "A service the server called did not answer in time: the language-model provider (`llm_timeout`).",
    507: "The server has no room to store this (`insufficient_storage`).",
}
_HEADERS: dict[int, dict[str, Any]] = {
    429: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}},
}
AUTHENTICATED = (400, 401, 403, 429)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting ``statuses`` with the error envelope."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def iter_routes(app: FastAPI) -> Iterator[Any]:
    """Every route of ``app`` with its full path (``path_format``, ``methods``, ``matches``).

    FastAPI from 0.13x keeps an included router whole instead of copying its routes
    into the application's list; ``iter_route_contexts`` walks into them.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied, flat
        yield from app.routes
        return
    yield from iter_route_contexts(app.routes)


def _authenticates(dependant: Dependant) -> bool:
    return any(dep.call is get_principal or _authenticates(dep) for dep in dependant.dependencies)


# Parameters whose rules live in the services, documented here for routes that declare
# them without (a route's own bounds win).
_PARAMETER_RULES: dict[tuple[str | None, str], dict[str, Any]] = {
    (None, "limit"): {"minimum": 1, "maximum": MAX_LIMIT},
    (None, "cursor"): {"description": "`next_cursor` of the previous page (opaque)"},
    ("/api/v1/secrets/{name}", "name"): {"pattern": SECRET_NAME_RE.pattern},
}


def _document_conventions(paths: dict[str, Any]) -> None:
    for path, operations in paths.items():
        for operation in operations.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                rules = _PARAMETER_RULES.get((path, param["name"])) or _PARAMETER_RULES.get((None, param["name"]))
                if not rules:
                    continue
                target = param if set(rules) == {"description"} else param["schema"]
                for key, value in rules.items():
                    target.setdefault(key, value)


def _finish(app: FastAPI, schema: dict[str, Any]) -> None:
    """Bearer security on the operations that authenticate; no 422 (validation errors are 400)."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>` (`runyard token create`, or the admin key).",
    }
    paths = schema.get("paths", {})
    for route in iter_routes(app):
        original = getattr(route, "original_route", route)
        if not (isinstance(original, APIRoute) and original.include_in_schema and _authenticates(original.dependant)):
            continue
        operations = paths.get(route.path_format, {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is not None:
                operation["security"] = [{SECURITY_SCHEME: []}]
    _document_conventions(paths)
    # FastAPI documents a 422 HTTPValidationError on every operation with parameters;
    # runyard answers validation errors with 400 and the envelope (api.errors).
    for operations in paths.values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            if "HTTPValidationError" in json.dumps(responses.get("422", {})):
                del responses["422"]
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    remaining = json.dumps(schema)
    assert "#/components/schemas/HTTPValidationError" not in remaining


def install(app: FastAPI) -> None:
    """Bearer security in the schema and Swagger UI at ``/docs`` from the package's assets.

    Create the app with ``docs_url=None``: this serves ``/docs`` itself.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _finish(app, generate())  # generate() caches the schema on the app
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            # No validator badge: it would send the spec to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})

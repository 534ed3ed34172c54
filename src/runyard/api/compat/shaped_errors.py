"""One route class per compat surface: each answers its routes' errors (auth, validation,
the services') in its reference's shape. An app-wide handler would answer runyard's
envelope alone, so the shape is chosen per route."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from runyard.api.errors import _HTTP_CODES, domain_error_headers
from runyard.services.errors import DomainError

_LOCATIONS = ("body", "query", "path", "header")


class ErrorAnswer(Protocol):
    def __call__(self, request: Request, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response: ...


def error_shaped_route(answer: ErrorAnswer) -> type[APIRoute]:
    """An ``APIRoute`` subclass whose errors ``answer`` renders."""

    class ShapedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def shaped_handler(request: Request) -> Response:
                try:
                    return await handler(request)
                except DomainError as exc:
                    return answer(request, exc.status, exc.code, exc.message, exc.details, domain_error_headers(exc))
                except RequestValidationError as exc:
                    errors = [{"field": ".".join(str(p) for p in err.get("loc", ()) if p not in _LOCATIONS) or "body",
                               "message": err.get("msg", "invalid")} for err in exc.errors()]
                    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
                    return answer(request, 400, "validation_error", f"invalid request: {summary}", {"errors": errors})
                except StarletteHTTPException as exc:
                    code = _HTTP_CODES.get(exc.status_code, "error")
                    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
                    return answer(request, exc.status_code, code, message)

            return shaped_handler

    return ShapedRoute

"""Exception hierarchy of the runyard SDK.

Everything the SDK raises on purpose derives from :class:`RunyardError`, so callers can
catch one class. HTTP failures become :class:`APIStatusError` subclasses chosen by status
code; transport failures become :class:`APIConnectionError` / :class:`APITimeoutError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .models import Run

__all__ = [
    "RunyardError",
    "ConfigurationError",
    "APIError",
    "APIStatusError",
    "ValidationError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "RateLimitError",
    "ServerError",
    "APIConnectionError",
    "APITimeoutError",
    "RunFailedError",
    "WaitTimeoutError",
]


class RunyardError(Exception):
    """Base class of every exception the SDK raises deliberately."""


class ConfigurationError(RunyardError):
    """The client is missing something it needs (e.g. an API key)."""


class APIError(RunyardError):
    """Something went wrong talking to the runyard API."""

    message: str
    request: httpx.Request | None

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIStatusError(APIError):
    """The server answered with a non-2xx status.

    ``body`` is the raw decoded envelope (``{"error": {...}}``) or the response text when
    the body was not JSON, so nothing the server said is lost.
    """

    status: int
    code: str
    request_id: str | None
    details: Any
    body: Any
    response: httpx.Response

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: Any,
        code: str,
        request_id: str | None,
        details: Any = None,
    ) -> None:
        super().__init__(message, request=response.request)
        self.response = response
        self.status = response.status_code
        self.body = body
        self.code = code
        self.request_id = request_id
        self.details = details

    @property
    def status_code(self) -> int:
        return self.status

    def __str__(self) -> str:
        rid = f" (request_id: {self.request_id})" if self.request_id else ""
        return f"{self.status} {self.code}: {self.message}{rid}"


class ValidationError(APIStatusError):
    """400 / 422: the request was rejected; ``errors`` lists the per-field problems."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        details = self.details
        if isinstance(details, dict):
            for key in ("errors", "fields", "field_errors"):
                found = details.get(key)
                if isinstance(found, list):
                    return [e if isinstance(e, dict) else {"message": str(e)} for e in found]
        if isinstance(details, list):
            return [e if isinstance(e, dict) else {"message": str(e)} for e in details]
        return []

    @property
    def issues(self) -> list[dict[str, Any]]:
        """An invalid workflow definition's problems, each ``{code, message, path, line,
        column}`` (line and column 1-based in the YAML text; None for a dict); else empty."""
        details = self.details
        found = details.get("issues") if isinstance(details, dict) else None
        return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


class AuthenticationError(APIStatusError):
    """401: missing, unknown or expired API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key's role or restrictions forbid this."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409: e.g. a secret that already exists, or a state transition that is not allowed."""


class RateLimitError(APIStatusError):
    """429: ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one."""

    @property
    def retry_after(self) -> float | None:
        from ._base import parse_retry_after

        return parse_retry_after(self.response.headers)


class ServerError(APIStatusError):
    """5xx."""


class APIConnectionError(APIError):
    """The request never got an HTTP answer (refused, reset, DNS, TLS...)."""

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    """The request timed out on the client side."""

    def __init__(self, message: str = "Request timed out.", *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class RunFailedError(RunyardError):
    """Raised by waiting helpers with ``raise_on_failure=True`` when a run ends unsuccessfully."""

    run: Run

    def __init__(self, run: Run) -> None:
        err = run.error
        detail = f": {err.type}: {err.message}" if err is not None else ""
        super().__init__(f"run {run.id} ended {run.status}{detail}")
        self.run = run


class WaitTimeoutError(RunyardError, TimeoutError):
    """A waiting helper's bound passed before the run(s) ended. Also a builtin ``TimeoutError``."""

    def __init__(self, message: str, *, runs: list[Run] | None = None) -> None:
        super().__init__(message)
        self.runs = runs or []


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    422: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_class_for(status: int) -> type[APIStatusError]:
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return APIStatusError


def make_status_error(response: httpx.Response) -> APIStatusError:
    """Build the right exception from an error response, tolerating non-envelope bodies."""
    try:
        body: Any = response.json()
    except Exception:
        body = response.text
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict):
        code = str(envelope.get("code") or f"http_{response.status_code}")
        message = str(envelope.get("message") or response.reason_phrase)
        details = envelope.get("details")
        request_id = envelope.get("request_id") or response.headers.get("x-request-id")
    else:
        # A proxy or a framework default page: keep the text, invent a stable code.
        code = f"http_{response.status_code}"
        if isinstance(body, dict) and "detail" in body:
            message = str(body["detail"])
        else:
            message = (body if isinstance(body, str) and body else response.reason_phrase) or "error"
            message = message.strip()[:500]
        details = None
        request_id = response.headers.get("x-request-id")
    cls = error_class_for(response.status_code)
    return cls(message, response=response, body=body, code=code, request_id=request_id, details=details)

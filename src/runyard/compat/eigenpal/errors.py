"""Eigenpal's exceptions: every non-2xx answer raises one, carrying ``status``,
``request_id``, ``envelope`` (the raw error body) and, for 429, ``retry_after``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runyard.sdk.errors import APIConnectionError, APIStatusError, APITimeoutError, RateLimitError

__all__ = [
    "EigenpalError", "EigenpalValidationError", "EigenpalAuthError", "EigenpalForbiddenError",
    "EigenpalNotFoundError", "EigenpalConflictError", "EigenpalRateLimitError", "EigenpalServerError",
    "EigenpalTimeoutError", "EigenpalConnectionError", "EigenpalNotSupportedError", "translated",
]


class EigenpalError(Exception):
    """A refused or failed request. ``status``: the HTTP status (``None`` when no answer
    came); ``code``: runyard's stable error code; ``request_id``: quote it when reporting;
    ``envelope``: the body as the server sent it (``{"error": {...}}``); ``retry_after``:
    seconds to wait (429 only)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, envelope: Any = None, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.envelope = envelope
        self.retry_after = retry_after

    @property
    def requestId(self) -> str | None:  # noqa: N802 — the TypeScript SDK's name, for ported code
        return self.request_id


class EigenpalValidationError(EigenpalError):
    """400 (and 422): the request was refused as sent."""


class EigenpalAuthError(EigenpalError):
    """401: no key, or one that is unknown, revoked or expired."""


class EigenpalForbiddenError(EigenpalError):
    """403: the key may not do this (its role or its restrictions)."""


class EigenpalNotFoundError(EigenpalError):
    """404: no such thing the key can see."""


class EigenpalConflictError(EigenpalError):
    """409: the thing is not in a state that allows this (a run already started…)."""


class EigenpalRateLimitError(EigenpalError):
    """429: ``retry_after`` says when to try again."""


class EigenpalServerError(EigenpalError):
    """5xx."""


class EigenpalTimeoutError(EigenpalError):
    """The request (or a wait) took longer than allowed."""


class EigenpalConnectionError(EigenpalError):
    """The server gave no HTTP answer (refused, reset, TLS…)."""


class EigenpalNotSupportedError(EigenpalError, NotImplementedError):
    """A part of Eigenpal's surface runyard does not have (agents, Git source, automations):
    ``feature`` names it. Raised before any request is sent."""

    def __init__(self, feature: str, hint: str) -> None:
        super().__init__(f"{feature} is not available on runyard: {hint}", code="not_supported")
        self.feature = feature


_BY_STATUS: dict[int, type[EigenpalError]] = {
    400: EigenpalValidationError, 422: EigenpalValidationError, 401: EigenpalAuthError,
    403: EigenpalForbiddenError, 404: EigenpalNotFoundError, 409: EigenpalConflictError,
    429: EigenpalRateLimitError,
}


def error_for(exc: APIStatusError) -> EigenpalError:
    cls = _BY_STATUS.get(exc.status) or (EigenpalServerError if exc.status >= 500 else EigenpalError)
    retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
    return cls(exc.message, status=exc.status, code=exc.code, request_id=exc.request_id, envelope=exc.body,
               retry_after=retry_after)


@contextmanager
def translated() -> Iterator[None]:
    """The runyard SDK's exceptions raised inside as Eigenpal's."""
    try:
        yield
    except APIStatusError as exc:
        raise error_for(exc) from exc
    except APITimeoutError as exc:
        raise EigenpalTimeoutError(exc.message, code="timeout") from exc
    except APIConnectionError as exc:
        raise EigenpalConnectionError(exc.message, code="connection_error") from exc

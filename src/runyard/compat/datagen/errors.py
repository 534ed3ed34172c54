"""DataGen's six error classes, and the translation of the runyard SDK's exceptions into them.

Every class carries what runyard said: ``status_code`` (``None`` when no HTTP answer came),
``code`` (runyard's stable error code, docs/errors.md), ``details`` and ``request_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runyard.sdk.errors import APIConnectionError, APIStatusError

__all__ = ["DatagenError", "DatagenAuthError", "DatagenToolError", "DatagenHttpError", "DatagenDeploymentError",
           "DatagenSecretError", "translated"]


class DatagenError(Exception):
    """Base of every DataGen client error."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None,
                 details: Any = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details if details is not None else {}
        self.request_id = request_id


class DatagenAuthError(DatagenError):
    """No API key, or the key was refused (401) or may not do this (403)."""


class DatagenToolError(DatagenError):
    """``execute_tool``: the tool ran and failed (``run_id`` names its run)."""

    def __init__(self, message: str, *, run_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.run_id = run_id


class DatagenHttpError(DatagenError):
    """Any other refused request (4xx/5xx), or no HTTP answer at all."""


class DatagenDeploymentError(DatagenError):
    """A custom tool's deploy, update or run failed. ``run`` holds the run (``get_run``'s
    shape) when a run failed or did not end in time."""

    def __init__(self, message: str, *, run: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.run = run


class DatagenSecretError(DatagenError):
    """A secret operation was refused (``set_secret`` of an existing name without ``force``…)."""


def from_status_error(exc: APIStatusError, kind: type[DatagenError]) -> DatagenError:
    cls: type[DatagenError] = DatagenAuthError if exc.status in (401, 403) else kind
    return cls(f"HTTP {exc.status} {exc.code}: {exc.message}", status_code=exc.status, code=exc.code,
               details=exc.details, request_id=exc.request_id)


@contextmanager
def translated(kind: type[DatagenError] = DatagenHttpError) -> Iterator[None]:
    """Raise the runyard SDK's errors inside as ``kind`` (``DatagenAuthError`` for 401/403;
    ``DatagenHttpError`` when no answer came)."""
    try:
        yield
    except APIStatusError as exc:
        raise from_status_error(exc, kind) from exc
    except APIConnectionError as exc:
        raise DatagenHttpError(exc.message, code="connection_error") from exc

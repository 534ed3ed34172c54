"""DataMaker's error: the REST reference's ``{"error": {"code", "message", "details"}}``,
raised instead of the runyard SDK's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runyard.sdk.errors import APIConnectionError, APIStatusError

__all__ = ["DataMakerError", "DataMakerConnectionError", "translated"]

#: runyard codes that read better in DataMaker's vocabulary (a scenario is a runyard tool).
_CODES = {"tool_not_found": "scenario_not_found", "invalid_tool_name": "invalid_scenario_name"}


class DataMakerError(Exception):
    """A refused request. ``body`` is the error as DataMaker's REST API writes it:
    ``{"error": {"code", "message", "details", "request_id"}}``; branch on ``code`` (stable),
    not on ``message``. ``status_code`` is the HTTP status (``None`` when no answer came)."""

    def __init__(self, status_code: int | None, code: str, message: str, *, details: Any = None,
                 request_id: str | None = None) -> None:
        super().__init__(f"{status_code} {code}: {message}" if status_code else f"{code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.request_id = request_id

    @property
    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "details": self.details}
        if self.request_id:
            error["request_id"] = self.request_id
        return {"error": error}


class DataMakerConnectionError(DataMakerError):
    """The server gave no HTTP answer (refused, reset, timed out…)."""


def _scenario_wording(message: str) -> str:
    return message.replace("tool ", "scenario ", 1) if message.startswith("tool ") else message


def from_status_error(exc: APIStatusError) -> DataMakerError:
    code = _CODES.get(exc.code, exc.code)
    details = dict(exc.details) if isinstance(exc.details, dict) else ({} if exc.details is None
                                                                       else {"details": exc.details})
    if code != exc.code:
        details.setdefault("runyard_code", exc.code)
    message = _scenario_wording(exc.message) if code != exc.code else exc.message
    return DataMakerError(exc.status, code, message, details=details, request_id=exc.request_id)


@contextmanager
def translated() -> Iterator[None]:
    """Turn the runyard SDK's exceptions raised inside into :class:`DataMakerError`."""
    try:
        yield
    except APIStatusError as exc:
        raise from_status_error(exc) from exc
    except APIConnectionError as exc:
        raise DataMakerConnectionError(None, "connection_error", exc.message) from exc

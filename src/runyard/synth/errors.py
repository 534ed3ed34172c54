"""Errors raised by the synthetic data library.

Each carries a stable ``code`` and structured ``details`` so the HTTP layer can map it
onto the error envelope without parsing messages.
"""

from __future__ import annotations

from typing import Any


class SynthError(Exception):
    """Base class: a request the library refuses, with a stable code."""

    code = "synth_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}


class TemplateError(SynthError):
    """The template (or an override) is invalid; ``details['field']`` names the field."""

    code = "invalid_template"

    def __init__(self, message: str, *, field: str | None = None, option: str | None = None) -> None:
        prefix = f"field '{field}': " if field is not None else ""
        super().__init__(prefix + message, field=field, option=option)
        self.field = field
        self.option = option


class GenerationError(SynthError):
    """A valid template cannot produce the requested output (raised before any byte)."""

    code = "generation_refused"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if code is not None:
            self.code = code

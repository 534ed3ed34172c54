"""Typed access to a field's generator options, with errors that name the field.

Generators read their options through :class:`Options`; anything left unread is an
unknown option and is reported, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from .errors import TemplateError

_MISSING: Any = object()


class Options:
    def __init__(self, field: str, generator: str, raw: dict[str, Any]) -> None:
        self.field = field
        self.generator = generator
        self._raw = dict(raw)
        self._read: set[str] = set()

    def error(self, option: str | None, message: str) -> TemplateError:
        where = f"option '{option}' " if option else ""
        return TemplateError(f"{where}{message} (generator '{self.generator}')", field=self.field, option=option)

    def _get(self, name: str, default: Any) -> Any:
        self._read.add(name)
        if name in self._raw and self._raw[name] is not None:
            return self._raw[name]
        if default is _MISSING:
            raise self.error(name, "is required")
        return default

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, default)

    def int(self, name: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise self.error(name, f"must be an integer, got {value!r}")
        value = int(value)
        if min is not None and value < min:
            raise self.error(name, f"must be >= {min}, got {value}")
        if max is not None and value > max:
            raise self.error(name, f"must be <= {max}, got {value}")
        return value

    def float(self, name: str, default: Any = _MISSING, *, min: float | None = None,
              max: float | None = None, positive: bool = False) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(name, f"must be a finite number, got {value!r}")
        value = float(value)
        if positive and value <= 0:
            raise self.error(name, f"must be > 0, got {value}")
        if min is not None and value < min:
            raise self.error(name, f"must be >= {min}, got {value}")
        if max is not None and value > max:
            raise self.error(name, f"must be <= {max}, got {value}")
        return value

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def str(self, name: str, default: Any = _MISSING, *, choices: Sequence[str] | None = None) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def list(self, name: str, default: Any = _MISSING, *, min_len: int = 0) -> Any:
        value = self._get(name, default)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(name, f"must be a list, got {type(value).__name__}")
        if len(value) < min_len:
            raise self.error(name, f"must have at least {min_len} item(s)")
        return value

    def date(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise self.error(name, f"must be a date YYYY-MM-DD, got {value!r}") from None

    def datetime(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if isinstance(value, dt.datetime):
            parsed = value
        else:
            try:
                parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise self.error(name, f"must be an ISO 8601 date-time, got {value!r}") from None
        if parsed.tzinfo is not None:
            # Generated timestamps are UTC without an offset; normalise input to that.
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return parsed

    def time(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if isinstance(value, dt.time):
            return value
        try:
            return dt.time.fromisoformat(str(value))
        except ValueError:
            raise self.error(name, f"must be a time HH:MM[:SS], got {value!r}") from None

    def finish(self) -> None:
        unknown = sorted(set(self._raw) - self._read)
        if unknown:
            raise self.error(unknown[0], "is not a known option")

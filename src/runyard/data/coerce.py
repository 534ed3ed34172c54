"""Turn a batch of JSON rows into an Arrow table of a dataset's column types.

The fast path converts whole columns in Arrow's C++ code after a cheap scan of the Python
types present in each column; only a column whose scan or conversion fails is re-checked
value by value, to name the rows that cannot be stored. Bad rows are dropped at the end in
one ``filter``, so a batch with a few bad rows costs little more than a clean one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from runyard.data.types import ARROW_TYPES, MAX_COLUMNS, Column, ColumnType, arrow_schema, column_name_error

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_NONE = type(None)
_TS = ARROW_TYPES["timestamp"]
_NAIVE_TS = pa.timestamp("us")
_WKT_POINT = re.compile(
    r"\s*POINT\s*\(\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s+([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*\)\s*",
    re.IGNORECASE,
)
# Cheap gates (RE2, run over a whole Arrow array) before a parse that may fail: a failed
# Arrow cast costs milliseconds.
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_TIMESTAMP_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
_ZONED_RE = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"


class TooManyColumns(Exception):
    """The batch would take the dataset past ``MAX_COLUMNS`` columns."""


class RowsRejected(Exception):
    """Raised in ``on_error="abort"`` mode by the first row that cannot be stored."""

    def __init__(self, failed: list[dict[str, Any]]) -> None:
        first = failed[0]
        detail = "; ".join(f"{k or '(row)'}: {v}" for k, v in first["errors"].items())
        super().__init__(f"row {first['index']} was rejected: {detail}")
        self.failed = failed


@dataclass
class Coerced:
    table: pa.Table  # the good rows, user columns only, in the order of ``columns``
    columns: list[Column]  # the input columns, widened, plus new ones in first-seen order
    failed: list[dict[str, Any]] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)


def coerce_rows(
    rows: list[Any],
    columns: list[Column],
    *,
    on_error: Literal["skip", "abort"] = "skip",
    evolve: bool = True,
) -> Coerced:
    """Coerce ``rows`` (parsed JSON objects) to ``columns``, adding and widening columns when
    ``evolve``. Rows that cannot be stored are reported in ``failed`` (or raise with abort)."""
    n = len(rows)
    errors: dict[int, dict[str, str]] = {}
    cols = list(columns)
    widened: list[str] = []

    src: list[dict[str, Any]] = rows  # type: ignore[assignment]
    if set(map(type, rows)) - {dict}:
        src = []
        for i, r in enumerate(rows):
            if isinstance(r, dict):
                src.append(r)
            else:
                errors[i] = {"": "a row must be an object"}
                src.append({})

    extracted: dict[str, list[Any]] = {}
    known = {c.name for c in cols}
    unknown = set().union(*src) - known if src else set()
    if unknown:
        new_names: list[str] = []
        for name in _first_seen(src, unknown):
            reason = column_name_error(name)
            if reason is None and not evolve:
                reason = "unknown column (the dataset's schema is fixed)"
            if reason is None:
                new_names.append(name)
                continue
            for i, r in enumerate(src):
                if name in r:
                    errors.setdefault(i, {})[str(name)] = reason
        if len(cols) + len(new_names) > MAX_COLUMNS:
            raise TooManyColumns(
                f"a dataset has at most {MAX_COLUMNS} columns; this batch would make it "
                f"{len(cols) + len(new_names)}"
            )
        for name in new_names:
            vals = [r.get(name) for r in src]
            kind = _infer(vals)
            if kind is not None:  # an all-null field waits for a batch that says what it holds
                cols.append(Column(name, kind))
                extracted[name] = vals

    arrays: list[pa.Array] = []
    for pos, col in enumerate(cols):
        name = col.name
        vals = extracted[name] if name in extracted else [r.get(name) for r in src]
        kinds = set(map(type, vals))
        kinds.discard(_NONE)
        kind = col.type
        if kind == "int" and float in kinds and evolve:
            kind = "float"  # a float arriving in an int column widens it; old parts stay int64
            cols[pos] = Column(name, "float", col.nullable)
            widened.append(name)
        arr, bad = _convert(kind, vals, kinds)
        for i, msg in bad.items():
            errors.setdefault(i, {})[name] = msg
        if not col.nullable and arr.null_count:
            for i, v in enumerate(vals):
                if v is None and i not in bad:
                    errors.setdefault(i, {})[name] = "a value is required (the column is not nullable)"
        arrays.append(arr)

    table = pa.Table.from_arrays(arrays, schema=arrow_schema(cols))
    failed = [{"index": i, "row": rows[i], "errors": errors[i]} for i in sorted(errors)]
    if failed and on_error == "abort":
        raise RowsRejected(failed[:1])
    if failed and cols:
        keep = np.ones(n, dtype=bool)
        keep[[f["index"] for f in failed]] = False
        table = table.filter(pa.array(keep))
    return Coerced(table=table, columns=cols, failed=failed, widened=widened)


def _first_seen(rows: list[dict[str, Any]], names: set[Any]) -> list[Any]:
    """``names`` in the order they first appear; usually the first row holds them all."""
    remaining = set(names)
    order: list[Any] = []
    for r in rows:
        if remaining.isdisjoint(r):
            continue
        for k in r:
            if k in remaining:
                order.append(k)
                remaining.discard(k)
        if not remaining:
            break
    return order


def _infer(vals: list[Any]) -> ColumnType | None:
    """The column type a new field gets from its values in one batch (None: no values)."""
    kinds = set(map(type, vals))
    kinds.discard(_NONE)
    if not kinds:
        return None
    if kinds <= {bool}:
        return "bool"
    if kinds <= {int}:
        return "int"
    if kinds <= {int, float}:
        return "float"
    if kinds & {dict, list}:
        return "json"
    if kinds <= {datetime}:
        return "timestamp"
    if kinds <= {date}:
        return "date"
    if kinds <= {str}:
        strings = pa.array(vals, pa.string())
        if _all_match(strings, _DATE_RE) and _try_date(strings) is not None:
            return "date"
        # A timestamp needs a time part, so "2024-01-01" alone stays a date, not midnight UTC.
        if _all_match(strings, _TIMESTAMP_RE):
            if _try_timestamp(strings) is not None:
                return "timestamp"
            try:
                for v in vals:
                    if v is not None:
                        _parse_timestamp(v)
                return "timestamp"
            except ValueError:
                pass
        return "string"
    return "string"


def _all_match(strings: pa.Array, pattern: str) -> bool:
    hits = pc.match_substring_regex(strings, pattern)
    return bool(hits.true_count == len(hits) - hits.null_count)


def _try_date(strings: pa.Array) -> pa.Array | None:
    try:
        return pc.cast(strings, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _try_timestamp(strings: pa.Array) -> pa.Array | None:
    """Arrow's ISO-8601 parse, or None (a mix of zoned and naive strings, or a bad one).

    Arrow parses zoned strings only into a zoned type and naive ones only into a naive one
    (naive means UTC here, so that result is relabelled); a failed cast costs milliseconds,
    so a regex picks the one cast likely to work."""
    zoned = pc.match_substring_regex(strings, _ZONED_RE)
    valid = len(zoned) - zoned.null_count
    try:
        if zoned.true_count == valid:
            return pc.cast(strings, _TS)
        if zoned.true_count == 0:
            return pc.cast(pc.cast(strings, _NAIVE_TS), _TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    return None


def _convert(kind: ColumnType, vals: list[Any], kinds: set[type]) -> tuple[pa.Array, dict[int, str]]:
    """One column as an Arrow array (bad values as null) and the bad values' messages."""
    arrow_type = ARROW_TYPES[kind]
    try:
        if kind == "int" and kinds <= {int}:
            return pa.array(vals, arrow_type), {}
        if kind == "float" and kinds <= {int, float}:
            return pa.array(vals, arrow_type), {}
        if kind == "bool" and kinds <= {bool}:
            return pa.array(vals, arrow_type), {}
        if kind == "string" and kinds <= {str}:
            return pa.array(vals, arrow_type), {}
        if kind == "date":
            if kinds <= {str}:
                arr = _try_date(pa.array(vals, pa.string()))
                if arr is not None:
                    return arr, {}
            elif kinds <= {date}:
                return pa.array(vals, arrow_type), {}
        if kind == "timestamp":
            if kinds <= {str}:
                arr = _try_timestamp(pa.array(vals, pa.string()))
                if arr is not None:
                    return arr, {}
            elif kinds <= {datetime}:
                return pa.array(vals, arrow_type), {}
        if kind == "json":
            dumps = orjson.dumps
            return pa.array([None if v is None else dumps(v).decode() for v in vals], arrow_type), {}
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, orjson.JSONEncodeError):
        pass
    return _convert_slow(kind, vals)


def _convert_slow(kind: ColumnType, vals: list[Any]) -> tuple[pa.Array, dict[int, str]]:
    """Value by value: the converted values, and a message for each that cannot be stored."""
    one = _ONE[kind]
    out: list[Any] = []
    bad: dict[int, str] = {}
    for i, v in enumerate(vals):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(one(v))
        except (ValueError, TypeError, OverflowError) as exc:
            bad[i] = str(exc)
            out.append(None)
    return pa.array(out, ARROW_TYPES[kind]), bad


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        text = v if len(v) <= 40 else v[:37] + "..."
        return f"the string {text!r}"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    return f"a {type(v).__name__}"


def _to_int(v: Any) -> int:
    if type(v) is int or (isinstance(v, int) and not isinstance(v, bool)):
        if INT64_MIN <= v <= INT64_MAX:
            return int(v)
        raise ValueError("integer out of range (a 64-bit signed integer)")
    if isinstance(v, float) and v.is_integer() and INT64_MIN <= v <= INT64_MAX:
        return int(v)  # only reached when widening is off: 3.0 still fits an int column
    raise ValueError(f"expected an integer, got {_describe(v)}")


def _to_float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise ValueError(f"expected a number, got {_describe(v)}")


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError(f"expected a boolean, got {_describe(v)}")


def _to_string(v: Any) -> str:
    # Scalars keep their JSON text (a zip code sent as 12345 is still "12345"); structures
    # belong in a json column, so they are refused rather than flattened.
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, float)):
        return orjson.dumps(v).decode()
    if isinstance(v, int):
        return str(v)
    raise ValueError(f"expected a string, got {_describe(v)}")


def _to_json(v: Any) -> str:
    try:
        return orjson.dumps(v).decode()
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"not a JSON value: {exc}") from None


def _parse_timestamp(v: str) -> datetime:
    try:
        ts = datetime.fromisoformat(v.strip())
    except ValueError:
        raise ValueError(f"expected an ISO-8601 timestamp, got {_describe(v)}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _to_timestamp(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    if isinstance(v, str):
        return _parse_timestamp(v)
    raise ValueError(f"expected an ISO-8601 timestamp string, got {_describe(v)}")


def _to_date(v: Any) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an ISO-8601 date (YYYY-MM-DD), got {_describe(v)}")


def _to_geo(v: Any) -> dict[str, float]:
    if isinstance(v, dict):
        lat, lon = v.get("lat"), v.get("lon")
        if set(v) == {"lat", "lon"} and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lat, lon)
        ):
            return _point(float(lat), float(lon))  # type: ignore[arg-type]
    elif isinstance(v, str):
        m = _WKT_POINT.fullmatch(v)
        if m:
            try:
                lon, lat = float(m.group(1)), float(m.group(2))  # WKT is POINT(lon lat)
            except ValueError:
                pass
            else:
                return _point(lat, lon)
    raise ValueError(f'expected a point {{"lat": ..., "lon": ...}} or "POINT(lon lat)", got {_describe(v)}')


def _point(lat: float, lon: float) -> dict[str, float]:
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ValueError(f"latitude {lat} is outside [-90, 90]")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise ValueError(f"longitude {lon} is outside [-180, 180]")
    return {"lat": lat, "lon": lon}


_ONE: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "string": _to_string,
    "json": _to_json,
    "timestamp": _to_timestamp,
    "date": _to_date,
    "geo": _to_geo,
}

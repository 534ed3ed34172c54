"""Run search: conditions over run columns and nested JSON values, chosen columns back.

``RunSearchService(platform).search(principal, request)`` serves ``POST /runs/search`` and
the DeepOrigin compat layer. Field names never reach SQL as text: a column is looked up
in a fixed table, a nested path's segments must match a plain-name pattern, and on both
databases the path and every value are bound parameters. Conditions on the indexed
columns (tool_name, status, project, session, batch_id, example_id, app, source_ref) with
a ``created_at`` range are served by (workspace, column, created_at, id) indexes
(store.tables); ``contains`` on the searchable text columns by pg_trgm on PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from runyard.schemas.run_search import SEARCH_OPS, RunSearchRequest
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.run_visibility import visibility_clause
from runyard.services.runs import TAG_KEYS
from runyard.services.text_match import text_match
from runyard.store.db import Database
from runyard.store.tables import runs
from runyard.timeutil import parse_rfc3339, rfc3339

# Run columns a condition may name, by the kind of value they hold.
TEXT, INT, BOOL, TIME = "text", "int", "bool", "time"
COLUMNS: dict[str, str] = {
    "id": TEXT, "tool_id": TEXT, "tool_name": TEXT, "tool_version": INT, "status": TEXT, "type": TEXT,
    "trigger": TEXT, "triggered_by": TEXT, "parent_run_id": TEXT, "step_id": TEXT, "item_index": INT,
    "session": TEXT, "batch_id": TEXT, "example_id": TEXT, "project": TEXT, "app": TEXT, "source_ref": TEXT,
    "worker_id": TEXT, "attempt": INT, "max_attempts": INT, "requires_confirmation": BOOL,
    "log_bytes": INT, "log_truncated": BOOL,
    "created_at": TIME, "queued_at": TIME, "started_at": TIME, "finished_at": TIME,
}
# JSON columns whose nested values a condition may name (``inputs.<name>``).
NESTED_ROOTS = ("tags", "inputs", "usage")
# What a row may carry: the columns, the JSON columns whole, and the input files' names.
SELECTABLE = (*COLUMNS, "tags", "inputs", "usage", "output", "error", "progress", "input_files")
ORDER_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")
MAX_PATH_SEGMENTS = 5
MAX_IN_VALUES = 1000
Scalar = str | int | float | bool


class HasDatabase(Protocol):
    """What the service needs of the platform: its database."""

    db: Database


def search_error(message: str, code: str, **details: Any) -> ValidationFailed:
    return ValidationFailed(message, code=code, details=details)


class RunSearchService:
    def __init__(self, platform: HasDatabase) -> None:
        self.db = platform.db

    def search(self, principal: Principal, request: RunSearchRequest) -> dict[str, Any]:
        """The runs ``principal`` may see (its workspace's; a restricted key: its tools')
        matching every condition of ``request``: ``{"object", "items", "total", "limit",
        "offset", "next_offset"}``, each item only the selected columns."""
        selected = self._selected(request.select)
        where = [runs.c.workspace_id == principal.workspace_id]
        if principal.tools:
            where.append(runs.c.tool_id.in_(sorted(principal.tools)))
        postgres = self.db.is_postgres
        where.extend(condition(prop.field, prop.op, prop.value, postgres=postgres) for prop in request.props)
        order = order_by(request.order)
        needed = sorted({*selected, "id"})
        query = (sa.select(*[runs.c[c] for c in needed]).where(*where).order_by(*order)
                 .limit(request.limit + 1).offset(request.offset))
        with self.db.read() as conn:
            hiding = visibility_clause(conn, principal)
            if hiding is not None:
                where.append(hiding)
                query = query.where(hiding)
            rows = conn.execute(query).all()
            total = None
            if request.with_total_count:
                total = conn.execute(sa.select(sa.func.count()).select_from(runs).where(*where)).scalar_one()
        more = len(rows) > request.limit
        items = _shape(rows[:request.limit], needed, selected)
        return {"object": "list", "items": items, "total": total, "limit": request.limit,
                "offset": request.offset, "next_offset": request.offset + request.limit if more else None}

    @staticmethod
    def _selected(select: list[str] | None) -> list[str]:
        if select is None:
            return list(SELECTABLE)
        unknown = [name for name in select if name not in SELECTABLE]
        if unknown:
            raise search_error(f"unknown select column(s): {', '.join(unknown)}; allowed: {', '.join(SELECTABLE)}",
                               "unknown_search_field", field="select", unknown=unknown, allowed=list(SELECTABLE))
        if not select:
            raise search_error("select names no column", "invalid_search_value", field="select")
        return list(dict.fromkeys(select))


def _shape(rows: list[Any], needed: list[str], selected: list[str]) -> list[dict[str, Any]]:
    """The rows as objects of the selected columns (times in RFC 3339, tags an object,
    input files their names)."""
    at = {name: needed.index(name) for name in selected}
    timed = [name for name in selected if COLUMNS.get(name) == TIME]
    items = []
    for row in rows:
        item = {name: row[i] for name, i in at.items()}
        for name in timed:
            item[name] = rfc3339(item[name])
        if "tags" in item:
            item["tags"] = item["tags"] or {}
        if "input_files" in item:
            item["input_files"] = sorted((item["input_files"] or {}).keys())
        items.append(item)
    return items


# -- conditions -------------------------------------------------------------------------
def condition(field: str, op: str, value: Any, *, postgres: bool) -> sa.ColumnElement[bool]:
    """The SQL condition of one prop; a 400 naming what is allowed when it makes no sense."""
    if op not in SEARCH_OPS:
        raise search_error(f"unknown op {op!r}; allowed: {', '.join(SEARCH_OPS)}", "unknown_search_op",
                           field=field, op=op, allowed=list(SEARCH_OPS))
    root, _, rest = field.partition(".")
    if not rest and field in COLUMNS:
        return _column_condition(field, op, value, postgres)
    if root == "tags" and rest in TAG_KEYS:  # the tags' own columns (indexed)
        return _column_condition(rest, op, value, postgres)
    if root in NESTED_ROOTS and rest:
        segments = rest.split(".")
        if root == "tags" or len(segments) > MAX_PATH_SEGMENTS or not all(_SEGMENT.match(s) for s in segments):
            allowed = [f"tags.{k}" for k in TAG_KEYS] if root == "tags" else [
                f"{root}.<name> (at most {MAX_PATH_SEGMENTS} names of letters, digits, _ or -)"]
            raise search_error(f"unknown field {field!r}; allowed: {', '.join(allowed)}", "unknown_search_field",
                               field=field, allowed=allowed)
        return _nested_condition(runs.c[root], segments, op, value, postgres=postgres, field=field)
    allowed = [*COLUMNS, *(f"{r}.<name>" for r in NESTED_ROOTS)]
    raise search_error(f"unknown field {field!r}; allowed: {', '.join(allowed)}", "unknown_search_field",
                       field=field, allowed=allowed)


def _bad_value(field: str, op: str, want: str) -> ValidationFailed:
    return search_error(f"{field} {op}: the value must be {want}", "invalid_search_value", field=field, op=op)


def _exists_flag(field: str, value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise _bad_value(field, "exists", "true or false")
    return value


def _values(field: str, op: str, value: Any, check: Callable[[Any], Any], want: str) -> list[Any]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
        raise _bad_value(field, op, f"a list of 1 to {MAX_IN_VALUES} values, each {want}")
    return [check(v) for v in value]


def _column_value(field: str, op: str, kind: str) -> Callable[[Any], Any]:
    """A check turning one value given for column ``field`` into what it is compared with."""
    def check(value: Any) -> Any:
        if kind == TEXT and isinstance(value, str):
            return value
        if kind == INT and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if kind == BOOL and isinstance(value, bool):
            return value
        if kind == TIME and isinstance(value, str):
            try:
                return parse_rfc3339(value)
            except ValueError:
                pass
        raise _bad_value(field, op, {TEXT: "a string", INT: "a number", BOOL: "true or false",
                                     TIME: "an RFC 3339 timestamp"}[kind])
    return check


def _column_condition(field: str, op: str, value: Any, postgres: bool) -> sa.ColumnElement[bool]:
    col = runs.c[field]
    kind = COLUMNS[field]
    if op == "exists":
        return col.is_not(None) if _exists_flag(field, value) else col.is_(None)
    check = _column_value(field, op, kind)
    if op in ("in", "nin"):
        values = _values(field, op, value, check, kind)
        return col.in_(values) if op == "in" else sa.or_(col.not_in(values), col.is_(None))
    if op in ("contains", "startswith"):
        if kind != TEXT:
            raise search_error(f"{op} applies to text columns; {field} is not one", "invalid_search_value",
                               field=field, op=op)
        return text_match(col, op, _text(field, op, value), postgres)
    if kind == BOOL and op not in ("eq", "neq"):
        raise search_error(f"{field} takes eq, neq or exists", "invalid_search_value", field=field, op=op)
    given = check(value)
    if op == "eq":
        return col == given
    if op == "neq":
        return col.is_distinct_from(given)
    return getattr(col, ORDER_OPS[op])(given)


def _text(field: str, op: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad_value(field, op, "a non-empty string")
    return value


def _nested_condition(col: Any, segments: list[str], op: str, value: Any, *, postgres: bool,
                      field: str) -> sa.ColumnElement[bool]:
    node = _JsonNode(col, segments, postgres)
    if op == "exists":
        present = node.kind().is_not(None) & (node.kind() != "null")
        return present if _exists_flag(field, value) else sa.not_(sa.func.coalesce(present, False))
    if op in ("contains", "startswith"):
        return node.kind().in_(node.text_kinds) & text_match(node.text(), op, _text(field, op, value), postgres)
    if op in ("in", "nin"):
        values = _values(field, op, value, lambda v: _scalar(field, op, v), "a string, number or boolean")
        match = sa.or_(*[node.equals(v) for v in values])
        return match if op == "in" else sa.not_(sa.func.coalesce(match, False))
    given = _scalar(field, op, value)
    if op == "eq":
        return node.equals(given)
    if op == "neq":
        return sa.not_(sa.func.coalesce(node.equals(given), False))
    if isinstance(given, bool):
        raise search_error(f"{field} {op}: booleans take eq, neq, in, nin or exists", "invalid_search_value",
                           field=field, op=op)
    return node.compare(ORDER_OPS[op], given)


def _scalar(field: str, op: str, value: Any) -> Scalar:
    if isinstance(value, str | int | float | bool):
        return value
    raise _bad_value(field, op, "a string, number or boolean (use exists for null)")


class _JsonNode:
    """A nested value of a JSON column, addressed by bound path parameters: SQLite's
    json_extract/json_type with '$."a"."b"', PostgreSQL's #> and #>> with ARRAY['a','b']."""

    def __init__(self, col: Any, segments: list[str], postgres: bool) -> None:
        self.col, self.postgres = col, postgres
        if postgres:
            self.path = sa.bindparam(None, segments, type_=ARRAY(sa.Text))
            self.text_kinds = ("string",)
        else:
            self.path = sa.bindparam(None, "$" + "".join(f'."{s}"' for s in segments), type_=sa.Text)
            self.text_kinds = ("text",)

    def kind(self) -> Any:
        """The JSON type name of the value (NULL when absent)."""
        if self.postgres:
            return sa.func.jsonb_typeof(self.col.op("#>", return_type=JSONB)(self.path))
        return sa.func.json_type(self.col, self.path)

    def text(self) -> Any:
        if self.postgres:
            return self.col.op("#>>", return_type=sa.Text)(self.path)
        return sa.func.json_extract(self.col, self.path, type_=sa.Text)

    def _kinds_of(self, value: Scalar) -> tuple[str, ...]:
        if isinstance(value, bool):
            return ("boolean",) if self.postgres else ("true", "false")
        if isinstance(value, int | float):
            return ("number",) if self.postgres else ("integer", "real")
        return self.text_kinds

    def equals(self, value: Scalar) -> sa.ColumnElement[bool]:
        if self.postgres:  # jsonb equality: type and value
            return self.col.op("#>", return_type=JSONB)(self.path) == sa.cast(
                sa.literal(json.dumps(value), sa.Text), JSONB)
        if isinstance(value, bool):
            return self.kind() == ("true" if value else "false")
        return self.kind().in_(self._kinds_of(value)) & (self._sqlite_value() == sa.literal(value))

    def compare(self, method: str, value: str | int | float) -> sa.ColumnElement[bool]:
        """An ordering comparison, true only between values of the same JSON type."""
        same_kind = self.kind().in_(self._kinds_of(value))
        if self.postgres:
            node = self.col.op("#>", return_type=JSONB)(self.path)
            return same_kind & getattr(node, method)(sa.cast(sa.literal(json.dumps(value), sa.Text), JSONB))
        return same_kind & getattr(self._sqlite_value(), method)(sa.literal(value))

    def _sqlite_value(self) -> Any:
        return sa.func.json_extract(self.col, self.path, type_=sa.types.NullType())


# -- order ------------------------------------------------------------------------------
def order_by(order: str | None) -> list[Any]:
    """``'<column> asc|desc'``, comma-separated, then the id (ties broken the same way);
    runs without a value come last either way."""
    terms: list[Any] = []
    direction = "desc"
    for part in (order or "created_at desc").split(","):
        words = part.split()
        if not words:
            continue
        name, direction = words[0], (words[1].lower() if len(words) > 1 else "asc")
        if name not in COLUMNS or direction not in ("asc", "desc") or len(words) > 2:
            raise search_error(f"order {part.strip()!r}: use '<column> asc|desc' with a column of "
                               f"{', '.join(COLUMNS)}", "invalid_search_order", field="order",
                               allowed=list(COLUMNS))
        col = runs.c[name]
        term = col.desc() if direction == "desc" else col.asc()
        terms.append(term if not col.nullable else term.nulls_last())
    if not any(getattr(t, "element", None) is runs.c.id for t in terms):
        terms.append(runs.c.id.desc() if direction == "desc" else runs.c.id.asc())
    return terms

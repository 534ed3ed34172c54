"""Keyset pagination with opaque cursors: ``{"items", "next_cursor", "total"}``."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runyard.services.errors import ValidationFailed

MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(values, list):
            raise ValueError
        return values
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValidationFailed("cursor is malformed", code="invalid_cursor") from exc


def check_limit(limit: int, maximum: int = MAX_LIMIT) -> int:
    if limit < 1 or limit > maximum:
        raise ValidationFailed(f"limit must be between 1 and {maximum}", code="invalid_limit",
                               details={"field": "limit"})
    return limit


def paginate(
    conn: Connection,
    query: sa.Select,
    *,
    sort_col: sa.ColumnElement,
    id_col: sa.ColumnElement,
    descending: bool,
    cursor: str | None,
    limit: int,
    include_total: bool = False,
    cursor_value: Any = None,
    nulls_last: bool = False,
    offset: int | None = None,
) -> tuple[list[sa.Row], str | None, int | None]:
    """Rows after ``cursor`` ordered by (sort_col, id); id breaks ties so order is total.

    ``nulls_last``: ``sort_col`` may be NULL; such rows come last in either order (their
    cursors carry null). ``offset``: rows to skip instead of a cursor (never both); the
    page's ``next_cursor`` continues after it. ``cursor_value`` turns a cursor's sort value
    back into a column value (raising ValueError or TypeError: a malformed cursor).
    """
    check_limit(limit)
    if offset is not None:
        if cursor:
            raise ValidationFailed("offset and cursor cannot be combined: page with one or the other",
                                   details={"field": "offset"})
        if not 0 <= offset <= MAX_OFFSET:
            raise ValidationFailed(f"offset must be between 0 and {MAX_OFFSET}", details={"field": "offset"})
    total = None
    if include_total:
        total = conn.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    if cursor:
        values = decode_cursor(cursor)
        if len(values) != 2 or not isinstance(values[1], str | int) or isinstance(values[1], bool):
            raise ValidationFailed("cursor is malformed", code="invalid_cursor")
        last_sort, last_id = values
        if cursor_value is not None and last_sort is not None:
            try:
                last_sort = cursor_value(last_sort)
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValidationFailed("cursor is malformed", code="invalid_cursor") from exc
        if last_sort is None and not nulls_last:
            raise ValidationFailed("cursor is malformed", code="invalid_cursor")
        after = (lambda a, b: a < b) if descending else (lambda a, b: a > b)
        if last_sort is None:  # among the trailing NULLs
            query = query.where(sort_col.is_(None), after(id_col, last_id))
        else:
            later = [after(sort_col, last_sort), sa.and_(sort_col == last_sort, after(id_col, last_id))]
            if nulls_last:
                later.append(sort_col.is_(None))
            query = query.where(sa.or_(*later))
    order = [sort_col.desc(), id_col.desc()] if descending else [sort_col.asc(), id_col.asc()]
    if nulls_last:
        order[0] = order[0].nulls_last()
    query = query.order_by(*order).limit(limit + 1)
    if offset:
        query = query.offset(offset)
    rows = conn.execute(query).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]._mapping
        next_cursor = encode_cursor([_jsonable(last[sort_col.key]), last[id_col.key]])
    return rows, next_cursor, total


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value

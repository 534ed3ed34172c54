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
) -> tuple[list[sa.Row], str | None, int | None]:
    """Rows after ``cursor`` ordered by (sort_col, id); id breaks ties so order is total."""
    check_limit(limit)
    total = None
    if include_total:
        total = conn.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    if cursor:
        values = decode_cursor(cursor)
        if len(values) != 2:
            raise ValidationFailed("cursor is malformed", code="invalid_cursor")
        last_sort, last_id = values
        if cursor_value is not None:
            last_sort = cursor_value(last_sort)
        if descending:
            query = query.where(sa.or_(sort_col < last_sort, sa.and_(sort_col == last_sort, id_col < last_id)))
        else:
            query = query.where(sa.or_(sort_col > last_sort, sa.and_(sort_col == last_sort, id_col > last_id)))
    order = (sort_col.desc(), id_col.desc()) if descending else (sort_col.asc(), id_col.asc())
    rows = conn.execute(query.order_by(*order).limit(limit + 1)).all()
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

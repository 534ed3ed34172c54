"""Case-sensitive substring and prefix conditions that mean the same on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa


def text_match(expr: Any, op: str, text: str, postgres: bool) -> sa.ColumnElement[bool]:
    """``expr`` contains (``op`` "contains") or starts with ("startswith") ``text``, case
    and wildcards taken literally. SQLite's LIKE ignores case, so it gets GLOB (whose prefix
    form an index on ``expr`` serves); PostgreSQL gets LIKE (which pg_trgm indexes serve).
    The pattern is one bound parameter."""
    if postgres:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return expr.like(("%" if op == "contains" else "") + escaped + "%", escape="\\")
    escaped = re.sub(r"([*?\[])", r"[\1]", text)
    return expr.op("GLOB")(sa.literal(("*" if op == "contains" else "") + escaped + "*", sa.Text))

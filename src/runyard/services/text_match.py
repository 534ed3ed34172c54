"""Case-sensitive substring and prefix conditions that mean the same on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa


def text_match(expr: Any, op: str, text: str, postgres: bool) -> sa.ColumnElement[bool]:
    """``expr`` contains (``op`` "contains") or starts with ("startswith") ``text``, case
    and wildcards taken literally. SQLite's LIKE ignores case, so it gets GLOB (whose prefix
    form an index on ``expr`` serves); PostgreSQL gets LIKE (which pg_trgm indexes serve).
    The pattern is one bound parameter. The explicit ``IS NOT NULL`` lets the planners use
    the partial indexes of the sparse tag columns (SQLite does not infer it from GLOB)."""
    if postgres:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        match = expr.like(("%" if op == "contains" else "") + escaped + "%", escape="\\")
    else:
        escaped = re.sub(r"([*?\[])", r"[\1]", text)
        match = expr.op("GLOB")(sa.literal(("*" if op == "contains" else "") + escaped + "*", sa.Text))
    return sa.and_(expr.is_not(None), match)

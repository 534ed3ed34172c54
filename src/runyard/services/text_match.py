"""Case-sensitive substring and prefix conditions that mean the same on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

# What SQLite's planner is told of a substring match on a sparse column (see text_match).
RARE_MATCH = "0.001"  # SQLite wants a literal constant here, not a parameter


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
        if op == "contains" and _sparse_indexed(expr):
            # SQLite cannot estimate how many rows '*text*' matches, and with a LIMIT it
            # prefers walking (workspace, created_at) newest first, hoping to fill the page
            # soon: through every run of the workspace when few match (seconds at a
            # million runs). Told the match is rare, it scans the column's partial index
            # instead, whose size (the runs that have the tag) bounds the cost.
            match = sa.func.likelihood(match, sa.literal_column(RARE_MATCH))
    return sa.and_(expr.is_not(None), match)


def _sparse_indexed(expr: Any) -> bool:
    """Whether ``expr`` is a column with a partial (workspace, column, …) index on SQLite,
    one holding only the rows that have a value."""
    table = getattr(expr, "table", None)
    if not isinstance(expr, sa.Column) or table is None:
        return False
    return any(len(index.expressions) > 1 and index.expressions[1] is expr
               and index.dialect_options["sqlite"]["where"] is not None for index in table.indexes)

"""Row helpers: a dict that reads like a SQLAlchemy row, and splitting joined rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class RowView:
    """A plain dict with the row shape (``._mapping`` and attributes) that readers use."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


def split_joined(row: Any, *tables: sa.Table) -> tuple[RowView, ...]:
    """One view per table of a row selected from a join (same-named columns kept apart)."""
    mapping = row._mapping
    return tuple(RowView({c.key: mapping[c] for c in table.c}) for table in tables)

"""A dataset's manifest: the columns and the list of immutable Parquet parts at one version.

A manifest is an immutable value. Every change (an append, a clear, a compaction, new stats)
makes the next version, which the services store as its own blob ``manifests/<version>.json``
and commit with a compare-and-set on the version, so readers always see one whole snapshot and
a concurrent writer finds out it lost the race instead of overwriting.
"""

from __future__ import annotations

import builtins
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from runyard.data.types import Column

FORMAT = 1  # the manifest JSON layout; bumped if it ever changes incompatibly


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Part:
    key: str  # blob key relative to the dataset's blob prefix, e.g. "parts/<uuid>.parquet"
    rows: int
    bytes: int
    min_id: int
    max_id: int
    ingestion_id: str | None  # None for a compacted part holding several ingestions
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Part:
        return cls(
            key=str(raw["key"]),
            rows=int(raw["rows"]),
            bytes=int(raw["bytes"]),
            min_id=int(raw["min_id"]),
            max_id=int(raw["max_id"]),
            ingestion_id=raw.get("ingestion_id"),
            created_at=str(raw["created_at"]),
        )


@dataclass(frozen=True)
class Manifest:
    version: int
    columns: list[Column]
    parts: list[Part]
    next_id: int = 1  # the next ``_id`` to assign; never goes back, so ids never repeat
    sort_order: list[str] | None = None
    column_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)

    @classmethod
    def empty(cls, columns: list[Column] | None = None, *, sort_order: list[str] | None = None) -> Manifest:
        """Version 0 of a new dataset: no parts, ids start at 1."""
        return cls(version=0, columns=list(columns or []), parts=[], sort_order=sort_order)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.parts)

    def part_keys(self) -> list[str]:
        return [p.key for p in self.parts]

    def _next(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, version=self.version + 1, created_at=_now(), **changes)

    def with_appended(
        self,
        parts: list[Part],
        columns: list[Column],
        *,
        column_stats: dict[str, dict[str, Any]] | None = None,
    ) -> Manifest:
        """The next version with ``parts`` added and the (possibly evolved) ``columns``.

        Parts must hold ids from ``next_id`` on, so a writer that built its parts against an
        older version finds out here (or at the compare-and-set) rather than duplicating ids.
        ``column_stats`` None keeps the previous (now approximate) stats."""
        start = self.next_id
        for p in sorted(parts, key=lambda p: p.min_id):
            if p.min_id < start or p.max_id < p.min_id or p.max_id - p.min_id + 1 != p.rows:
                raise ValueError(
                    f"part {p.key} holds ids {p.min_id}..{p.max_id} ({p.rows} rows); "
                    f"ids from {self.next_id} on were expected, without overlaps"
                )
            start = p.max_id + 1
        known = {p.key for p in self.parts}
        dup = [p.key for p in parts if p.key in known]
        if dup:
            raise ValueError(f"parts already in the manifest: {', '.join(dup)}")
        names = [c.name for c in columns]
        dropped = {c.name for c in self.columns} - set(names)
        if dropped or len(set(names)) != len(names):
            raise ValueError("appended columns must keep every existing column, once each")
        return self._next(
            parts=[*self.parts, *sorted(parts, key=lambda p: p.min_id)],
            columns=list(columns),
            next_id=max(self.next_id, start),
            column_stats=dict(self.column_stats if column_stats is None else column_stats),
        )

    def cleared(self) -> Manifest:
        """The next version with no rows; columns stay, and ``next_id`` stays so ids never repeat."""
        return self._next(parts=[], column_stats={})

    def replaced(self, old_keys: list[str], new_part: Part) -> Manifest:
        """The next version with the parts ``old_keys`` merged into ``new_part`` (compaction),
        which takes the place of the first of them. Raises ValueError if any is gone (a clear or
        another compaction got there first) or the rows do not add up."""
        wanted = set(old_keys)
        present = [p for p in self.parts if p.key in wanted]
        if len(present) != len(wanted) or not wanted:
            missing = sorted(wanted - {p.key for p in present})
            raise ValueError(
                f"parts not in manifest version {self.version}: {', '.join(missing) or '(none)'}"
            )
        if sum(p.rows for p in present) != new_part.rows:
            raise ValueError(
                f"the merged part holds {new_part.rows} rows, the parts it replaces "
                f"{sum(p.rows for p in present)}"
            )
        parts: list[Part] = []
        for p in self.parts:
            if p.key not in wanted:
                parts.append(p)
            elif p is present[0]:
                parts.append(new_part)
        return self._next(parts=parts)

    def with_stats(self, column_stats: dict[str, dict[str, Any]]) -> Manifest:
        return self._next(column_stats=dict(column_stats))

    def with_sort_order(self, sort_order: list[str] | None) -> Manifest:
        return self._next(sort_order=None if sort_order is None else list(sort_order))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "columns": [c.to_dict() for c in self.columns],
            "parts": [p.to_dict() for p in self.parts],
            "next_id": self.next_id,
            "sort_order": self.sort_order,
            "column_stats": self.column_stats,
            "created_at": self.created_at,
        }

    def to_json(self) -> builtins.bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        if int(raw.get("format", FORMAT)) > FORMAT:
            raise ValueError(f"manifest format {raw['format']} is newer than this runyard understands")
        return cls(
            version=int(raw["version"]),
            columns=[Column.from_dict(c) for c in raw["columns"]],
            parts=[Part.from_dict(p) for p in raw["parts"]],
            next_id=int(raw["next_id"]),
            sort_order=raw.get("sort_order"),
            column_stats=dict(raw.get("column_stats") or {}),
            created_at=str(raw["created_at"]),
        )

    @classmethod
    def from_json(cls, data: builtins.bytes | str) -> Manifest:
        return cls.from_dict(orjson.loads(data))

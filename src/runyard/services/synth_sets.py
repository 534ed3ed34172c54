"""Saved sets: named, versioned tables of rows (Parquet in blob storage).

Saving under an existing name adds a version. Sets feed ``reference`` fields of
templates and receive generations written ``into_set``.

The operations callers use take the principal and authorize it (any key reads; saving and
deleting need a member); ``save_parquet``, ``describe``, ``table`` and ``column`` serve
the template service, which has authorized its caller already.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from runyard.ids import new_id
from runyard.schemas.synth import SET_NAME_PATTERN
from runyard.services.access import Permission, Principal
from runyard.services.errors import NotFound, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.rows import split_joined
from runyard.store.tables_synth import synth_set_versions, synth_sets
from runyard.synth.formats.jsonfmt import json_ready
from runyard.timeutil import rfc3339, utcnow

NAME_RE = re.compile(SET_NAME_PATTERN)
MAX_JSON_ROWS = 1_000_000
DEFAULT_READ_LIMIT = 10_000
SAVE_SETS = Permission("member", "save sets")
DELETE_SETS = Permission("member", "delete sets")


def _check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise ValidationFailed("set name must be 1-200 characters of letters, digits, '_', '.', '-'",
                               code="invalid_set_name", details={"field": "name"})


def rows_to_table(rows: Any) -> pa.Table:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValidationFailed("rows must be a list of objects", code="invalid_rows", details={"field": "rows"})
    if len(rows) > MAX_JSON_ROWS:
        raise ValidationFailed(f"at most {MAX_JSON_ROWS} rows per request", code="invalid_rows",
                               details={"field": "rows"})
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationFailed(f"rows do not form a table: {exc}", code="invalid_rows",
                               details={"field": "rows"}) from exc


def _columns(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def set_view(head: Any, version: Any) -> dict[str, Any]:
    h, v = head._mapping, version._mapping
    return {
        "object": "set", "id": h["id"], "name": h["name"], "version": v["version"],
        "latest_version": h["latest_version"], "row_count": v["row_count"], "columns": v["columns"],
        "size": v["size"], "source": v["source"], "created_at": rfc3339(h["created_at"]),
        "updated_at": rfc3339(v["created_at"]),
    }


class SetService:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def save_rows(self, principal: Principal, name: Any, rows: Any) -> dict[str, Any]:
        SAVE_SETS.check(principal)
        if not isinstance(name, str):
            raise ValidationFailed("name is required", details={"field": "name"})
        _check_name(name)
        table = rows_to_table(rows)
        sink = io.BytesIO()
        try:
            pq.write_table(table, sink)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:  # e.g. a column of empty objects
            raise ValidationFailed(f"rows cannot be stored: {exc}", code="invalid_rows",
                                   details={"field": "rows"}) from exc
        return self._save(principal.workspace_id, name, table.num_rows, table.schema, sink.getvalue(), None)

    def save_parquet(self, workspace_id: str, name: str, path: Path, source: dict[str, Any]) -> dict[str, Any]:
        """Store a finished Parquet file (a generation written ``into_set``)."""
        _check_name(name)
        meta = pq.ParquetFile(path)
        return self._save(workspace_id, name, meta.metadata.num_rows, meta.schema_arrow, path, source)

    def _save(self, workspace_id: str, name: str, row_count: int, schema: pa.Schema, data: bytes | Path,
              source: dict[str, Any] | None) -> dict[str, Any]:
        now = utcnow()
        version_id = new_id("setv")
        key = f"synth/sets/{workspace_id}/{version_id}.parquet"
        if isinstance(data, Path):
            size = data.stat().st_size
            self.blobs.put_file(key, data, move=True)
        else:
            size = len(data)
            self.blobs.put_bytes(key, data)
        with self.db.write() as conn:
            head = conn.execute(sa.select(synth_sets).where(
                synth_sets.c.workspace_id == workspace_id, synth_sets.c.name == name)).first()
            if head is None:
                set_id, version = new_id("set"), 1
                conn.execute(synth_sets.insert().values(id=set_id, workspace_id=workspace_id, name=name,
                                                        latest_version=1, created_at=now, updated_at=now))
            else:
                set_id, version = head.id, head.latest_version + 1
                conn.execute(synth_sets.update().where(synth_sets.c.id == set_id)
                             .values(latest_version=version, updated_at=now))
            conn.execute(synth_set_versions.insert().values(
                id=version_id, workspace_id=workspace_id, set_id=set_id, version=version, row_count=row_count,
                columns=_columns(schema), blob_key=key, size=size, source=source, created_at=now))
            head, row = self._lookup(conn, workspace_id, name, version)
        return set_view(head, row)

    def _lookup(self, conn: Any, workspace_id: str, name: str, version: int | None) -> tuple[Any, Any]:
        head = conn.execute(sa.select(synth_sets).where(
            synth_sets.c.workspace_id == workspace_id, synth_sets.c.name == name)).first()
        if head is None:
            raise NotFound(f"set {name!r} not found", code="set_not_found", details={"name": name})
        wanted = version or head.latest_version
        row = conn.execute(sa.select(synth_set_versions).where(
            synth_set_versions.c.set_id == head.id, synth_set_versions.c.version == wanted)).first()
        if row is None:
            raise NotFound(f"set {name!r} has no version {wanted}", code="set_version_not_found",
                           details={"name": name, "version": wanted})
        return head, row

    def describe(self, workspace_id: str, name: str, version: int | None = None) -> dict[str, Any]:
        with self.db.read() as conn:
            head, row = self._lookup(conn, workspace_id, name, version)
        return set_view(head, row)

    def table(self, workspace_id: str, name: str, version: int | None = None) -> pa.Table:
        with self.db.read() as conn:
            _, row = self._lookup(conn, workspace_id, name, version)
        return pq.read_table(self.blobs.path(row.blob_key))

    def load(self, principal: Principal, name: str, version: int | None = None, *, offset: int = 0,
             limit: int = DEFAULT_READ_LIMIT) -> dict[str, Any]:
        workspace_id = principal.workspace_id
        if not 0 <= offset <= 2**53 or not 1 <= limit <= MAX_JSON_ROWS:
            raise ValidationFailed(f"offset must be 0-2**53 and limit between 1 and {MAX_JSON_ROWS}",
                                   code="invalid_limit")
        view = self.describe(workspace_id, name, version)
        # An offset past the end reads nothing (and one past 64 bits must not reach Arrow).
        table = self.table(workspace_id, name, view["version"]).slice(min(offset, view["row_count"]), limit)
        view["rows"] = [{k: json_ready(v) for k, v in r.items()} for r in table.to_pylist()]
        view["offset"] = offset
        view["next_offset"] = offset + len(view["rows"]) if offset + len(view["rows"]) < view["row_count"] else None
        return view

    def column(self, workspace_id: str, name: str, column: str, version: int | None) -> pa.Array:
        """For ``reference`` fields; KeyError when the set or column is missing."""
        try:
            table = self.table(workspace_id, name, version)
        except NotFound as exc:
            raise KeyError(exc.message) from None
        if column not in table.column_names:
            raise KeyError(f"set {name!r} has no column {column!r}")
        return table.column(column).combine_chunks()

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        workspace_id = principal.workspace_id
        query = sa.select(synth_sets, synth_set_versions).join(synth_set_versions, sa.and_(
            synth_set_versions.c.set_id == synth_sets.c.id,
            synth_set_versions.c.version == synth_sets.c.latest_version,
        )).where(synth_sets.c.workspace_id == workspace_id)
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=synth_sets.c.name, id_col=synth_sets.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
        items = [set_view(*split_joined(row, synth_sets, synth_set_versions)) for row in rows]
        return Page(items, nxt, total)

    def delete(self, principal: Principal, name: str) -> None:
        DELETE_SETS.check(principal)
        workspace_id = principal.workspace_id
        with self.db.write() as conn:
            head = conn.execute(sa.select(synth_sets).where(
                synth_sets.c.workspace_id == workspace_id, synth_sets.c.name == name)).first()
            if head is None:
                raise NotFound(f"set {name!r} not found", code="set_not_found", details={"name": name})
            keys = [r.blob_key for r in conn.execute(sa.select(synth_set_versions.c.blob_key).where(
                synth_set_versions.c.set_id == head.id))]
            conn.execute(synth_set_versions.delete().where(synth_set_versions.c.set_id == head.id))
            conn.execute(synth_sets.delete().where(synth_sets.c.id == head.id))
        for key in keys:
            path = self.blobs.path(key)
            path.unlink(missing_ok=True)

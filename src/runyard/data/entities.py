"""Entity resolution on ingest: which stored entity each incoming row stands for.

A pure library (no catalog, no HTTP): the service hands it the parts of the dataset's current
snapshot and the parts an ingestion wrote, and gets back the parts to store, the old parts to
rewrite or drop, and one report entry per incoming row.

- A row's entity is its ``_entity_id`` (a row no resolution wrote is its own entity, ``_id``).
- **ExactMatch**: rows are the same entity when every key column is equal after the links'
  normalisation (NFKC, case-fold, trimmed; ``data.links.normalize``); a row with a key column
  without value matches nothing. Keys are hashed and joined in DuckDB. ``min_distinct`` /
  ``min_variation`` (as for links, default 1 and 0 here) switch matching off for a key whose
  values (stored and incoming) are too few or vary too little, and the report says why.
- **GeoMatch**: a row is the entity of the nearest point (stored, or earlier in the batch)
  within ``distance`` — the links' 3-D grid join, never all pairs; chains inside the batch are
  followed by pointer jumping in NumPy.
- An incoming row that matches no stored row but an earlier row of the same ingestion gets
  that row's entity. A new entity's id is the ``_id`` its first row was given, so it never
  repeats.

Policies, each leaving one stored row per entity:
- ``keep_first``: the stored row stays; matching incoming rows are not stored (``kept_existing``).
- ``overwrite``: the entity's last incoming row replaces its stored row (``overwritten``).
- ``merge``: one row whose fields are the stored values with the incoming non-null values
  applied over them in order (``merged``).
The first row of a new entity is ``created``; ``matched`` is what a preview (nothing stored)
reports for a row that would join an entity.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runyard.data.links import (
    EXACT_TYPES,
    GEO_COORD_TYPES,
    ExactMatch,
    GeoMatch,
    LinkOptionsError,
    chord_for,
    normalize,
    unit_vectors,
)
from runyard.data.links import connect as links_connect
from runyard.data.manifest import Part
from runyard.data.parts import (
    COMPRESSION,
    COMPRESSION_LEVEL,
    ROW_GROUP_ROWS,
    TARGET_PART_ROWS,
    new_part_paths,
    publish_part,
    quote_ident,
    read_parts_sql,
)
from runyard.data.types import ENTITY_ID, INGESTED_AT, INGESTION_ID, ROW_ID, Column, arrow_schema

POLICIES = ("keep_first", "overwrite", "merge")
ACTIONS = ("created", "matched", "kept_existing", "overwritten", "merged")
MATCH_TYPES = ("ExactMatch", "GeoMatch")
MAX_KEY_COLUMNS = 16
_SEPARATOR = "\x1f"  # joins the normalised values of several key columns (unit separator)


class EntityResolutionError(ValueError):
    """A config that cannot be used: the message says what is wrong, ``field`` where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class EntityResolution:
    match_type: str
    columns: tuple[str, ...]
    options: ExactMatch | GeoMatch
    policy: str = "keep_first"

    def to_dict(self) -> dict[str, Any]:
        return {"match_type": self.match_type, "columns": list(self.columns), "options": self.options.to_dict(),
                "policy": self.policy}


def parse_config(raw: Any) -> EntityResolution:
    """``{match_type, columns, options?, policy?}`` checked for shape and option ranges (the
    columns' existence and types are checked once the schema is known: ``check_columns``)."""
    if not isinstance(raw, dict):
        raise EntityResolutionError("entity_resolution must be an object {match_type, columns, options?, policy?}")
    unknown = set(raw) - {"match_type", "columns", "options", "policy"}
    if unknown:
        raise EntityResolutionError(f"entity_resolution takes match_type, columns, options and policy, "
                                    f"not {', '.join(sorted(unknown))}", sorted(unknown)[0])
    match_type = raw.get("match_type")
    if match_type not in MATCH_TYPES:
        raise EntityResolutionError(f"match_type must be one of {', '.join(MATCH_TYPES)} (got {match_type!r})",
                                    "match_type")
    columns = raw.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        raise EntityResolutionError("columns must be a non-empty list of column names", "columns")
    if len(set(columns)) != len(columns):
        raise EntityResolutionError("columns must not repeat a column", "columns")
    if len(columns) > MAX_KEY_COLUMNS:
        raise EntityResolutionError(f"at most {MAX_KEY_COLUMNS} key columns", "columns")
    if match_type == "GeoMatch" and len(columns) > 2:
        raise EntityResolutionError("GeoMatch takes one geo column or a latitude and a longitude column", "columns")
    options = raw.get("options")
    if options is not None and not isinstance(options, dict):
        raise EntityResolutionError("options must be an object", "options")
    try:
        parsed: ExactMatch | GeoMatch
        if match_type == "ExactMatch":
            parsed = ExactMatch.from_options({"min_distinct": 1, **(options or {})})
        else:
            parsed = GeoMatch.from_options(options)
    except LinkOptionsError as exc:
        raise EntityResolutionError(str(exc), f"options.{exc.field}" if exc.field else "options") from None
    policy = raw.get("policy", "keep_first")
    if policy not in POLICIES:
        raise EntityResolutionError(f"policy must be one of {', '.join(POLICIES)} (got {policy!r})", "policy")
    return EntityResolution(match_type, tuple(columns), parsed, policy)


def check_columns(config: EntityResolution, columns: list[Column]) -> None:
    """Refuse key columns the schema does not have, or of a type the match type cannot compare."""
    types = {c.name: c.type for c in columns}
    missing = [c for c in config.columns if c not in types]
    if missing:
        raise EntityResolutionError(f"unknown column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: the "
                                    f"dataset has {', '.join(types) or 'no columns'}", "columns")
    kinds = [types[c] for c in config.columns]
    if config.match_type == "ExactMatch":
        bad = [f"{c} ({t})" for c, t in zip(config.columns, kinds, strict=True) if t not in EXACT_TYPES]
        if bad:
            raise EntityResolutionError(f"ExactMatch compares {', '.join(EXACT_TYPES)} columns, not "
                                        f"{', '.join(bad)}", "columns")
    elif not (kinds == ["geo"] or (len(kinds) == 2 and all(t in GEO_COORD_TYPES for t in kinds))):
        raise EntityResolutionError("GeoMatch takes one geo column or a latitude and a longitude number column "
                                    f"(got {', '.join(f'{c} ({t})' for c, t in zip(config.columns, kinds, strict=True))})",
                                    "columns")


@dataclass
class Resolution:
    """What an ingestion stores once resolved: ``new_parts`` (written, not yet published),
    ``replaced`` (old part key → its rewrite, empty to drop it) and the per-row report."""

    new_parts: list[tuple[Path, Part]] = field(default_factory=list)
    replaced: dict[str, list[tuple[Path, Part]]] = field(default_factory=dict)
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    entity_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    action: list[str] = field(default_factory=list)
    excluded: str | None = None

    @property
    def stored_rows(self) -> int:
        return sum(p.rows for _, p in self.new_parts)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(ACTIONS, 0)
        for a in self.action:
            out[a] += 1
        return out

    def entries(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        stop = len(self.action) if stop is None else min(stop, len(self.action))
        return [{"index": int(self.index[i]), "entity_id": int(self.entity_id[i]), "action": self.action[i]}
                for i in range(start, stop)]

    def discard(self) -> None:
        """Remove every file this resolution wrote (it was not committed)."""
        for path, _ in [*self.new_parts, *(p for parts in self.replaced.values() for p in parts)]:
            path.unlink(missing_ok=True)


# -- matching ---------------------------------------------------------------------------------
def _keys(table: pa.Table, names: tuple[str, ...]) -> pa.Array:
    normal = [normalize(table.column(n)) for n in names]
    if len(normal) == 1:
        return normal[0]
    return pc.binary_join_element_wise(*normal, _SEPARATOR)  # null when any value is missing


def _exact_targets(con: duckdb.DuckDBPyConnection, old: pa.Table, new: pa.Table, config: EntityResolution
                   ) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Per incoming row: the stored entity it matches (-1: none) and the position of the first
    incoming row with its key (itself when first or keyless)."""
    assert isinstance(config.options, ExactMatch)
    n = new.num_rows
    con.register("old_keys", pa.table({"ent": old.column(ENTITY_ID), "id": old.column(ROW_ID),
                                       "k": _keys(old, config.columns)}))
    con.register("new_keys", pa.table({"pos": pa.array(np.arange(n, dtype=np.int64)), "k": _keys(new, config.columns)}))
    thresholds = config.options.min_distinct > 1 or config.options.min_variation > 0
    for name in config.columns if thresholds else ():  # each key column must vary enough (stored and incoming)
        con.register("key_values", pa.table({"v": pa.chunked_array(
            [normalize(old.column(name)), normalize(new.column(name))], pa.string())}))
        distinct, non_null = (int(x) for x in con.execute(
            "SELECT count(DISTINCT v), count(v) FROM key_values").fetchall()[0])
        why = config.options.eligible(distinct, non_null)
        if why:
            return np.full(n, -1, np.int64), np.arange(n, dtype=np.int64), f"column {name}: {why}"
    found = con.sql("""
        WITH stored AS (SELECT k, arg_min(ent, id) AS ent FROM old_keys WHERE k IS NOT NULL GROUP BY k)
        SELECT n.pos, coalesce(stored.ent, -1) AS ent,
               CASE WHEN n.k IS NULL THEN n.pos ELSE min(n.pos) OVER (PARTITION BY n.k) END AS first
        FROM new_keys n LEFT JOIN stored USING (k) ORDER BY n.pos""").to_arrow_table()
    return (found.column("ent").to_numpy().astype(np.int64), found.column("first").to_numpy().astype(np.int64),
            None)


def _points(table: pa.Table, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    if len(names) == 1:
        col = table.column(names[0]).combine_chunks()
        lat = pc.struct_field(col, "lat").to_numpy(zero_copy_only=False)
        lon = pc.struct_field(col, "lon").to_numpy(zero_copy_only=False)
    else:
        lat = pc.cast(table.column(names[0]), pa.float64()).to_numpy(zero_copy_only=False)
        lon = pc.cast(table.column(names[1]), pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(lat, np.float64), np.asarray(lon, np.float64)


def _grid(ids: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> pa.Table:
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    x, y, z = unit_vectors(lat[ok], lon[ok])
    return pa.table({"id": ids[ok], "x": x, "y": y, "z": z})


def _geo_targets(con: duckdb.DuckDBPyConnection, old: pa.Table, new: pa.Table, config: EntityResolution
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per incoming row: the stored entity of the nearest point within the distance, or (when
    an earlier incoming row is nearer, or no stored one is near) that row's position."""
    assert isinstance(config.options, GeoMatch)
    n = new.num_rows
    chord = chord_for(config.options.distance_km)
    cell = max(chord, 1e-9)
    olat, olon = _points(old, config.columns)
    nlat, nlon = _points(new, config.columns)
    con.register("op", _grid(old.column(ENTITY_ID).to_numpy().astype(np.int64), olat, olon))
    con.register("np_", _grid(np.arange(n, dtype=np.int64), nlat, nlon))
    con.register("offsets", pa.table({"dx": np.repeat([-1, 0, 1], 9), "dy": np.tile(np.repeat([-1, 0, 1], 3), 3),
                                      "dz": np.tile([-1, 0, 1], 9)}))
    bucket = (f"CAST(floor(x / {cell!r}) AS BIGINT) AS cx, CAST(floor(y / {cell!r}) AS BIGINT) AS cy, "
              f"CAST(floor(z / {cell!r}) AS BIGINT) AS cz")
    near = "(p.x - c.x) * (p.x - c.x) + (p.y - c.y) * (p.y - c.y) + (p.z - c.z) * (p.z - c.z)"
    found = con.sql(f"""
        WITH o AS (SELECT id, x, y, z, {bucket} FROM op),
             b AS (SELECT id, x, y, z, {bucket} FROM np_),
             p AS (SELECT id, x, y, z, cx + dx AS cx, cy + dy AS cy, cz + dz AS cz FROM b, offsets),
             cand AS (
                SELECT p.id AS pos, c.id AS target, false AS in_batch, {near} AS d2
                FROM p JOIN o AS c USING (cx, cy, cz) WHERE {near} <= {chord * chord!r}
                UNION ALL
                SELECT p.id AS pos, c.id AS target, true AS in_batch, {near} AS d2
                FROM p JOIN b AS c USING (cx, cy, cz) WHERE c.id < p.id AND {near} <= {chord * chord!r})
        SELECT pos, arg_min(target, (d2, in_batch, target)) AS target,
               arg_min(in_batch, (d2, in_batch, target)) AS in_batch
        FROM cand GROUP BY pos""").to_arrow_table()
    ent = np.full(n, -1, np.int64)
    parent = np.arange(n, dtype=np.int64)
    pos = found.column("pos").to_numpy().astype(np.int64)
    target = found.column("target").to_numpy().astype(np.int64)
    in_batch = found.column("in_batch").to_numpy(zero_copy_only=False).astype(bool)
    ent[pos[~in_batch]] = target[~in_batch]
    parent[pos[in_batch]] = target[in_batch]
    return ent, parent


def _roots(ent: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Follow each row's parent (an earlier row) to the row that starts its chain; a chain that
    reaches a row matching a stored entity takes that entity. Pointer jumping: log(depth) steps."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root, ent[root]


# -- resolving --------------------------------------------------------------------------------
def _write_parts(con: duckdb.DuckDBPyConnection, sql: str, schema: pa.Schema, directory: Path,
                 ingestion_id: str | None) -> list[tuple[Path, Part]]:
    """The rows of ``sql`` (in ``_id`` order) as parts of at most TARGET_PART_ROWS rows."""
    out: list[tuple[Path, Part]] = []
    reader = con.sql(sql).to_arrow_reader(ROW_GROUP_ROWS)
    writer: pq.ParquetWriter | None = None
    tmp = final = None
    rows, min_id, max_id = 0, 0, 0
    ingestions: set[Any] = set()

    def close() -> None:
        nonlocal writer, rows
        if writer is None:
            return
        writer.close()
        writer = None
        assert tmp is not None and final is not None
        owner = ingestion_id if ingestion_id is not None else (next(iter(ingestions)) if len(ingestions) == 1
                                                                else None)
        out.append((final, publish_part(tmp, final, rows=rows, min_id=min_id, max_id=max_id, ingestion_id=owner)))
        rows = 0
        ingestions.clear()

    try:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch]).cast(schema)
            if writer is None:
                directory.mkdir(parents=True, exist_ok=True)
                tmp, final = new_part_paths(directory)
                writer = pq.ParquetWriter(tmp, schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL)
                min_id = table.column(ROW_ID)[0].as_py()
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
            max_id = table.column(ROW_ID)[-1].as_py()
            if len(ingestions) < 2:
                ingestions.update(table.column(INGESTION_ID).unique().to_pylist())
            if rows >= TARGET_PART_ROWS:
                close()
        close()
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        for path, _ in out:
            path.unlink(missing_ok=True)
        raise
    return out


def resolve(old_parts: list[tuple[str, str, Part]], new_paths: list[str], columns: list[Column],
            config: EntityResolution, *, directory: Path, ingestion_id: str, store: bool = True,
            memory_mb: int = 1024) -> Resolution:
    """Resolve the rows of ``new_paths`` (one ingestion's parts, ``_id`` in row order) against
    ``old_parts`` ((key, local path, Part) of the current snapshot), all read with ``columns``.
    With ``store``, write the parts the ingestion stores and the rewrites of the old parts it
    changes into ``directory``; without, only the report (actions ``created``/``matched``)."""
    check_columns(config, columns)
    con = links_connect(memory_mb)
    written: Resolution = Resolution()
    try:
        old_src = read_parts_sql([p for _, p, _ in old_parts], columns, True)
        new_src = read_parts_sql(new_paths, columns, True)
        keys = ", ".join(quote_ident(c) for c in (ROW_ID, ENTITY_ID, *config.columns))
        old = con.sql(f"SELECT {keys} FROM ({old_src})").to_arrow_table()
        new = con.sql(f"SELECT {keys} FROM ({new_src}) ORDER BY {quote_ident(ROW_ID)}").to_arrow_table()
        n = new.num_rows
        new_ids = new.column(ROW_ID).to_numpy().astype(np.int64)
        excluded = None
        if config.match_type == "ExactMatch":
            stored_ent, first, excluded = _exact_targets(con, old, new, config)
            ent_of_root = stored_ent[first]
            root = first
        else:
            stored_ent, parent = _geo_targets(con, old, new, config)
            root, ent_of_root = _roots(stored_ent, parent)
        existing = ent_of_root >= 0
        entity = np.where(existing, ent_of_root, new_ids[root])
        first_of_new = ~existing & (root == np.arange(n))
        if not store:
            action = np.where(first_of_new, "created", "matched").tolist()
            return Resolution(index=np.arange(n, dtype=np.int64), entity_id=entity, action=action,
                              excluded=excluded)
        later = {"keep_first": "kept_existing", "overwrite": "overwritten", "merge": "merged"}[config.policy]
        action = np.where(first_of_new, "created", later).tolist()
        con.register("plan", pa.table({"_pos": pa.array(np.arange(n, dtype=np.int64)),
                                       "_row": pa.array(new_ids), "_ent": pa.array(entity, pa.int64()),
                                       "_existing": pa.array(existing)}))
        con.execute(f"CREATE TEMP TABLE incoming AS SELECT i.*, plan._pos, plan._ent, plan._existing FROM "
                    f"({new_src}) i JOIN plan ON i.{quote_ident(ROW_ID)} = plan._row")
        schema = arrow_schema(columns, metadata=True, entity=True)
        meta = [quote_ident(c) for c in (ROW_ID, INGESTION_ID, INGESTED_AT)]
        user = [quote_ident(c.name) for c in columns]
        removed = np.unique(entity[existing]) if config.policy != "keep_first" else np.zeros(0, np.int64)
        if config.policy == "keep_first":
            select = (f"SELECT {', '.join(meta)}, _ent AS {quote_ident(ENTITY_ID)}"
                      f"{''.join(', ' + u for u in user)} FROM incoming WHERE NOT _existing AND "
                      f"{quote_ident(ROW_ID)} = _ent ORDER BY {quote_ident(ROW_ID)}")
        elif config.policy == "overwrite":
            select = (f"SELECT {', '.join(meta)}, _ent AS {quote_ident(ENTITY_ID)}"
                      f"{''.join(', ' + u for u in user)} FROM incoming "
                      f"QUALIFY _pos = max(_pos) OVER (PARTITION BY _ent) ORDER BY {quote_ident(ROW_ID)}")
        else:
            con.register("removed_table", pa.table({"_ent": pa.array(removed, pa.int64())}))
            con.execute(f"CREATE TEMP TABLE previous AS SELECT * FROM ({old_src}) WHERE "
                        f"{quote_ident(ENTITY_ID)} IN (SELECT _ent FROM removed_table)")
            merged = ", ".join(
                f"coalesce(arg_max(i.{u}, i._pos) FILTER (WHERE i.{u} IS NOT NULL), any_value(p.{u})) AS {u}"
                for u in user)
            last = ", ".join(f"arg_max(i.{m}, i._pos) AS {m}" for m in meta)
            select = (f"SELECT {last}, i._ent AS {quote_ident(ENTITY_ID)}{', ' + merged if merged else ''} "
                      f"FROM incoming i LEFT JOIN (SELECT * FROM previous QUALIFY row_number() OVER "
                      f"(PARTITION BY {quote_ident(ENTITY_ID)} ORDER BY {quote_ident(ROW_ID)} DESC) = 1) p "
                      f"ON p.{quote_ident(ENTITY_ID)} = i._ent GROUP BY i._ent ORDER BY 1")
        written.new_parts = _write_parts(con, select, schema, directory, ingestion_id)
        if len(removed):
            ent_col = old.column(ENTITY_ID).to_numpy().astype(np.int64)
            old_rows = old.column(ROW_ID).to_numpy().astype(np.int64)[np.isin(ent_col, removed)]
            written.replaced = _rewrite_without(con, old_parts, columns, removed, old_rows, schema, directory)
        written.index = np.arange(n, dtype=np.int64)
        written.entity_id = entity
        written.action = action
        written.excluded = excluded
        return written
    except BaseException:
        written.discard()
        raise
    finally:
        con.close()


def _rewrite_without(con: duckdb.DuckDBPyConnection, old_parts: list[tuple[str, str, Part]], columns: list[Column],
                     entities: np.ndarray, rows: np.ndarray, schema: pa.Schema,
                     directory: Path) -> dict[str, list[tuple[Path, Part]]]:
    """The old parts holding ``rows`` (the stored rows of ``entities``), each rewritten without
    them (an empty list: nothing left). Only parts whose id range holds one of them are read."""
    con.register("gone", pa.table({"e": pa.array(entities, pa.int64())}))
    ordered = np.sort(rows)
    out: dict[str, list[tuple[Path, Part]]] = {}
    try:
        for key, path, part in old_parts:
            at = np.searchsorted(ordered, part.min_id)
            if at >= len(ordered) or ordered[at] > part.max_id:
                continue
            src = read_parts_sql([path], columns, True)
            out[key] = _write_parts(con, f"SELECT * FROM ({src}) WHERE {quote_ident(ENTITY_ID)} NOT IN "
                                         f"(SELECT e FROM gone) ORDER BY {quote_ident(ROW_ID)}",
                                    schema, directory, part.ingestion_id)
    except BaseException:
        for parts in out.values():
            for p, _ in parts:
                p.unlink(missing_ok=True)
        raise
    return out

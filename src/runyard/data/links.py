"""Links between datasets: matched row pairs, column sketches and candidate scores.

A pure library (no catalog, no HTTP): the service hands it the Parquet parts of two
snapshots and gets back the matched ``_id`` pairs and the evidence.

- **ExactMatch**: two columns name the same things when their values are equal after
  normalisation (Unicode NFKC, case-fold, trimmed; empty strings are no value). Options
  ``min_distinct`` (fewest distinct values each column must have) and ``min_variation``
  (least distinct/non-null-rows ratio) keep low-cardinality columns (booleans, statuses)
  from ever linking.
- **GeoMatch**: two points match when they lie within ``distance`` ``unit`` (km, m, mi) of
  each other on the sphere. Points are turned into unit vectors and bucketed into a 3-D grid
  whose cell is the chord of ``distance``, so each point is only compared with the points
  of its own and the 26 neighbouring cells (a hash join in DuckDB), never with all points.
  The chord is monotonic in the great-circle distance, so the test is exact.
- **Sketches** per column: row, non-null and distinct counts, and a KMV sketch (the ``k``
  smallest 64-bit hashes of the distinct normalised values, with their values). Two
  sketches give the Jaccard index and the containments of two columns (exact while both
  columns have at most ``k`` distinct values, estimated beyond), and the values behind the
  shared hashes are sample matching values.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runyard.data.parts import quote_ident, read_parts_sql
from runyard.data.types import ROW_ID, Column

SKETCH_K = 1024
SKETCH_VERSION = f"kmv1-duckdb-{duckdb.__version__}"  # hash() may change between DuckDB releases
SAMPLE_VALUES = 5
VALUE_CHARS = 80  # sample values are cut to this many characters
EARTH_RADIUS_KM = 6371.0088
UNITS_KM = {"km": 1.0, "m": 0.001, "mi": 1.609344}
MAX_DISTANCE_KM = 1000.0
EXACT_TYPES = ("string", "int", "date", "timestamp", "float")
# Types whose values can be the same things: compared as normalised text.
_FAMILY = {"string": "text", "int": "text", "date": "date", "timestamp": "timestamp", "float": "number"}
_COMPATIBLE = {("string", "int"), ("int", "string"), ("int", "float"), ("float", "int"),
               ("date", "string"), ("string", "date")}
GEO_COORD_TYPES = ("float", "int")


class LinkOptionsError(ValueError):
    """Options out of range: the message says which and why."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IncompatibleTypes(ValueError):
    def __init__(self, left: str, right: str, match_type: str, why: str = "") -> None:
        super().__init__(f"{match_type} cannot link a {left} column with a {right} column" + (f": {why}" if why else ""))
        self.left, self.right = left, right


# -- options -----------------------------------------------------------------------------
def _number(options: dict[str, Any], name: str, default: float, lo: float, hi: float, *,
            integer: bool = False, lo_open: bool = False) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise LinkOptionsError(f"{name} must be {'an integer' if integer else 'a number'}", name)
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value <= lo):
        raise LinkOptionsError(f"{name} must be {'>' if lo_open else '>='} {lo:g} and <= {hi:g} (got {value})", name)
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class ExactMatch:
    min_distinct: int = 10
    min_variation: float = 0.0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> ExactMatch:
        options = dict(options or {})
        unknown = set(options) - {"min_distinct", "min_variation"}
        if unknown:
            raise LinkOptionsError(f"ExactMatch takes min_distinct and min_variation, not {', '.join(sorted(unknown))}",
                                   sorted(unknown)[0])
        return cls(int(_number(options, "min_distinct", cls.min_distinct, 1, 1e12, integer=True)),
                   _number(options, "min_variation", cls.min_variation, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        return {"min_distinct": self.min_distinct, "min_variation": self.min_variation}

    def eligible(self, distinct: int, non_null: int) -> str | None:
        """None when a column with these counts may link, else why not."""
        if distinct < self.min_distinct:
            return f"{distinct} distinct values, fewer than min_distinct {self.min_distinct}"
        variation = distinct / non_null if non_null else 0.0
        if variation < self.min_variation:
            return f"variation {variation:.4g} (distinct/rows) below min_variation {self.min_variation:g}"
        return None


@dataclass(frozen=True)
class GeoMatch:
    distance: float = 1.0
    unit: str = "km"

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> GeoMatch:
        options = dict(options or {})
        unknown = set(options) - {"distance", "unit"}
        if unknown:
            raise LinkOptionsError(f"GeoMatch takes distance and unit, not {', '.join(sorted(unknown))}",
                                   sorted(unknown)[0])
        unit = options.get("unit", "km")
        if unit not in UNITS_KM:
            raise LinkOptionsError(f"unit must be one of {', '.join(UNITS_KM)}", "unit")
        distance = _number(options, "distance", 1.0, 0.0, MAX_DISTANCE_KM / UNITS_KM[unit], lo_open=True)
        return cls(distance, unit)

    @property
    def distance_km(self) -> float:
        return self.distance * UNITS_KM[self.unit]

    def to_dict(self) -> dict[str, Any]:
        return {"distance": self.distance, "unit": self.unit}


MATCH_TYPES = {"ExactMatch": ExactMatch, "GeoMatch": GeoMatch}


def parse_options(match_type: str, options: dict[str, Any] | None) -> ExactMatch | GeoMatch:
    kind = MATCH_TYPES.get(match_type)
    if kind is None:
        raise LinkOptionsError(f"match_type must be one of {', '.join(MATCH_TYPES)}", "match_type")
    return kind.from_options(options)


def check_types(match_type: str, left: list[str], right: list[str]) -> None:
    """Raise IncompatibleTypes unless the columns (types of one end's columns) can link."""
    shown_l, shown_r = "+".join(left), "+".join(right)
    if match_type == "ExactMatch":
        if len(left) != 1 or len(right) != 1:
            raise IncompatibleTypes(shown_l, shown_r, match_type, "ExactMatch links one column to one column")
        a, b = left[0], right[0]
        if a not in EXACT_TYPES or b not in EXACT_TYPES:
            raise IncompatibleTypes(a, b, match_type, f"only {', '.join(EXACT_TYPES)} columns can match exactly")
        if a != b and (a, b) not in _COMPATIBLE:
            raise IncompatibleTypes(a, b, match_type)
        return
    for side in (left, right):
        ok = side == ["geo"] or (len(side) == 2 and all(t in GEO_COORD_TYPES for t in side))
        if not ok:
            raise IncompatibleTypes(shown_l, shown_r, match_type,
                                    "each end must be a geo column or a latitude and a longitude number column")


# -- normalisation -----------------------------------------------------------------------
def normalize_text(value: Any) -> str | None:
    """The normal form ExactMatch compares (the reference of ``normalize``)."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).casefold().strip()
    return text or None


def normalize(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Every value as its normal form (NFKC, case-folded, trimmed); null for no value."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        if pa.types.is_floating(values.type):  # 3.0 and 3 are the same number
            as_int = pc.cast(values, pa.int64(), safe=False)
            whole = pc.equal(pc.cast(as_int, values.type), values)
            values = pc.if_else(whole, pc.cast(as_int, pa.string()), pc.cast(values, pa.string()))
        else:
            values = pc.cast(values, pa.string())
    if pc.all(pc.string_is_ascii(values)).as_py() is not False:  # NFKC leaves ASCII as it is
        text = pc.ascii_trim_whitespace(pc.ascii_lower(values))
    else:
        text = pc.utf8_lower(pc.utf8_normalize(values, "NFKC"))
        # casefold beyond lower case for the common cases (ß, final sigma)
        for before, after in (("ß", "ss"), ("ς", "σ")):
            if pc.any(pc.match_substring(text, before)).as_py():
                text = pc.replace_substring(text, before, after)
        text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


# -- reading -----------------------------------------------------------------------------
def connect(memory_mb: int = 1024, threads: int = 2) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config={"memory_limit": f"{int(memory_mb)}MB", "threads": max(1, int(threads))})
    con.execute("SET TimeZone = 'UTC'")
    return con


def read_columns(con: duckdb.DuckDBPyConnection, paths: list[str], columns: list[Column],
                 names: list[str]) -> pa.Table:
    """``_id`` and the named columns of every row of a snapshot."""
    src = read_parts_sql(paths, columns, True)
    select = ", ".join([quote_ident(ROW_ID), *(quote_ident(n) for n in names)])
    return con.sql(f"SELECT {select} FROM ({src})").to_arrow_table()


@dataclass
class Side:
    """One end's rows: ids and, for ExactMatch, values; for GeoMatch, lat and lon."""

    ids: np.ndarray
    values: pa.Array | None = None
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None

    @classmethod
    def from_table(cls, table: pa.Table, names: list[str], types: list[str]) -> Side:
        ids = table.column(ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64)
        if types == ["geo"]:
            col = table.column(names[0]).combine_chunks()
            lat = pc.struct_field(col, "lat").to_numpy(zero_copy_only=False)
            lon = pc.struct_field(col, "lon").to_numpy(zero_copy_only=False)
            return cls(ids, lat=np.asarray(lat, np.float64), lon=np.asarray(lon, np.float64))
        if len(names) == 2:
            lat = pc.cast(table.column(names[0]), pa.float64()).to_numpy()
            lon = pc.cast(table.column(names[1]), pa.float64()).to_numpy()
            return cls(ids, lat=np.asarray(lat, np.float64), lon=np.asarray(lon, np.float64))
        return cls(ids, values=table.column(names[0]).combine_chunks())


# -- ExactMatch --------------------------------------------------------------------------
def _keys(side: Side) -> pa.Table:
    assert side.values is not None
    keys = normalize(side.values)
    table = pa.table({"id": pa.array(side.ids, pa.int64()), "k": keys})
    return table.filter(pc.is_valid(keys))


@dataclass
class MatchResult:
    pairs: pa.Table  # left_id, right_id (int64), sorted
    evidence: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False


def _pairs_table(left: Any, right: Any) -> pa.Table:
    return pa.table({"left_id": pa.array(left, pa.int64()), "right_id": pa.array(right, pa.int64())})


def exact_match(left: Side, right: Side, options: ExactMatch, *, max_pairs: int = 5_000_000,
                con: duckdb.DuckDBPyConnection | None = None) -> MatchResult:
    """Matched row pairs of two columns by normalised equality, with the evidence; no pairs
    when either column is excluded by ``min_distinct`` / ``min_variation``."""
    own = con is None
    con = con or connect()
    try:
        lk, rk = _keys(left), _keys(right)  # noqa: F841 (read by DuckDB by name)
        stats = con.execute("SELECT (SELECT count(*) FROM lk), (SELECT count(DISTINCT k) FROM lk), "
                        "(SELECT count(*) FROM rk), (SELECT count(DISTINCT k) FROM rk)").fetchall()[0]
        ln, ld, rn, rd = (int(x) for x in stats)  # type: ignore[union-attr]
        evidence: dict[str, Any] = {"left_values": ln, "left_distinct": ld, "right_values": rn, "right_distinct": rd}
        excluded = {side: why for side, why in (("left", options.eligible(ld, ln)), ("right", options.eligible(rd, rn)))
                    if why}
        if excluded:
            evidence.update(excluded={k: v for k, v in excluded.items()}, overlap_distinct=0, samples=[])
            return MatchResult(_pairs_table([], []), {**evidence, "pairs": 0})
        overlap = con.execute("SELECT count(*) FROM (SELECT DISTINCT k FROM lk) JOIN (SELECT DISTINCT k FROM rk) "
                          "USING (k)").fetchall()[0][0]  # type: ignore[index]
        samples = [r[0] for r in con.execute(
            f"SELECT k FROM (SELECT DISTINCT k FROM lk) JOIN (SELECT DISTINCT k FROM rk) USING (k) "
            f"ORDER BY hash(k) LIMIT {SAMPLE_VALUES}").fetchall()]
        pairs = con.sql(f"SELECT lk.id AS left_id, rk.id AS right_id FROM lk JOIN rk USING (k) "
                        f"ORDER BY left_id, right_id LIMIT {int(max_pairs) + 1}").to_arrow_table()
        truncated = pairs.num_rows > max_pairs
        if truncated:
            pairs = pairs.slice(0, max_pairs)
        evidence.update(overlap_distinct=int(overlap), samples=[s[:VALUE_CHARS] for s in samples],
                        containment_left=round(overlap / ld, 6) if ld else 0.0,
                        containment_right=round(overlap / rd, 6) if rd else 0.0,
                        jaccard=round(overlap / (ld + rd - overlap), 6) if (ld + rd - overlap) else 0.0,
                        pairs=pairs.num_rows, truncated=truncated)
        return MatchResult(pairs.cast(_pairs_table([], []).schema), evidence, truncated)
    finally:
        if own:
            con.close()


# -- GeoMatch ----------------------------------------------------------------------------
def chord_for(distance_km: float) -> float:
    """The straight-line distance between two points of the unit sphere ``distance_km`` apart."""
    return 2.0 * math.sin(min(math.pi, distance_km / EARTH_RADIUS_KM) / 2.0)


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, ...]:
    la, lo = np.radians(lat), np.radians(lon)
    c = np.cos(la)
    return c * np.cos(lo), c * np.sin(lo), np.sin(la)


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _points(side: Side) -> pa.Table:
    assert side.lat is not None and side.lon is not None
    lat, lon, ids = side.lat, side.lon, side.ids
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    x, y, z = unit_vectors(lat[ok], lon[ok])
    return pa.table({"id": ids[ok], "x": x, "y": y, "z": z})


def geo_match(left: Side, right: Side, options: GeoMatch, *, max_pairs: int = 50_000_000,
              con: duckdb.DuckDBPyConnection | None = None) -> MatchResult:
    """Row pairs whose points are within ``options.distance`` of each other (grid join)."""
    own = con is None
    con = con or connect()
    try:
        chord = chord_for(options.distance_km)
        cell = max(chord, 1e-9)
        lp, rp = _points(left), _points(right)  # noqa: F841 (read by DuckDB by name)
        offsets = pa.table({"dx": np.repeat([-1, 0, 1], 9), "dy": np.tile(np.repeat([-1, 0, 1], 3), 3),  # noqa: F841
                            "dz": np.tile([-1, 0, 1], 9)})
        bucket = f"CAST(floor(x / {cell!r}) AS BIGINT) AS cx, CAST(floor(y / {cell!r}) AS BIGINT) AS cy, " \
                 f"CAST(floor(z / {cell!r}) AS BIGINT) AS cz"
        sql = f"""
            WITH l AS (SELECT id, x, y, z, {bucket} FROM lp),
                 r AS (SELECT id, x, y, z, {bucket} FROM rp),
                 probe AS (SELECT id, x, y, z, cx + dx AS cx, cy + dy AS cy, cz + dz AS cz FROM l, offsets)
            SELECT probe.id AS left_id, r.id AS right_id
            FROM probe JOIN r USING (cx, cy, cz)
            WHERE (probe.x - r.x) * (probe.x - r.x) + (probe.y - r.y) * (probe.y - r.y)
                  + (probe.z - r.z) * (probe.z - r.z) <= {chord * chord!r}
        """
        pairs = con.sql(f"SELECT * FROM ({sql}) ORDER BY left_id, right_id LIMIT {int(max_pairs) + 1}"
                        ).to_arrow_table()
        truncated = pairs.num_rows > max_pairs
        if truncated:
            pairs = pairs.slice(0, max_pairs)
        matched_left = int(pc.count_distinct(pairs.column("left_id")).as_py()) if pairs.num_rows else 0
        evidence = {"left_points": lp.num_rows, "right_points": rp.num_rows, "pairs": pairs.num_rows,
                    "left_matched": matched_left, "distance_km": options.distance_km, "truncated": truncated}
        return MatchResult(pairs, evidence, truncated)
    finally:
        if own:
            con.close()


def brute_force_geo(left: Side, right: Side, distance_km: float) -> set[tuple[int, int]]:
    """Every pair within ``distance_km`` by comparing all pairs (for tests and benchmarks)."""
    assert left.lat is not None and right.lat is not None and left.lon is not None and right.lon is not None
    out: set[tuple[int, int]] = set()
    for i in range(len(left.ids)):
        if not (np.isfinite(left.lat[i]) and np.isfinite(left.lon[i])):
            continue
        d = haversine_km(left.lat[i], left.lon[i], right.lat, right.lon)
        for j in np.nonzero(d <= distance_km)[0]:
            out.add((int(left.ids[i]), int(right.ids[j])))
    return out


def match(match_type: str, left: Side, right: Side, options: ExactMatch | GeoMatch, *, max_pairs: int,
          con: duckdb.DuckDBPyConnection | None = None) -> MatchResult:
    if match_type == "GeoMatch":
        assert isinstance(options, GeoMatch)
        return geo_match(left, right, options, max_pairs=max_pairs, con=con)
    assert isinstance(options, ExactMatch)
    return exact_match(left, right, options, max_pairs=max_pairs, con=con)


# -- sketches and candidates -------------------------------------------------------------
def family(column_type: str) -> str | None:
    """Columns of one family may be suggested as links of each other: text and integers
    (identifiers). Dates, timestamps and floats overlap by range, not by naming the same
    things, so they are only linked by hand."""
    return _FAMILY.get(column_type) if column_type in ("string", "int") else None


def column_sketch(values: pa.Array | pa.ChunkedArray, *, k: int = SKETCH_K,
                  con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """Counts and a KMV sketch of a column's normalised values (JSON-safe)."""
    own = con is None
    con = con or connect()
    try:
        keys = normalize(values)
        tbl = pa.table({"k": keys})  # noqa: F841
        # one pass: the distinct values grouped by hash (64-bit: no collision to matter), their
        # count, and the k smallest hashes with their values
        distinct, hashes, kept = con.execute(
            f"SELECT count(*), min(h, {int(k)}), min_by(v, h, {int(k)}) FROM "
            f"(SELECT hash(k) AS h, any_value(k) AS v FROM tbl WHERE k IS NOT NULL GROUP BY h)").fetchall()[0]  # type: ignore[misc]
        return {"version": SKETCH_VERSION, "rows": len(keys), "non_null": len(keys) - keys.null_count,
                "distinct": int(distinct), "k": int(k), "hashes": [int(h) for h in hashes or []],
                "values": [v[:VALUE_CHARS] for v in kept or []]}
    finally:
        if own:
            con.close()


def _hash_set(sketch: dict[str, Any]) -> frozenset[int]:
    """The sketch's hashes as a set, made once per sketch object (not stored)."""
    cached = sketch.get("_set")
    if cached is None:
        cached = sketch["_set"] = frozenset(sketch["hashes"])
    return cached  # type: ignore[no-any-return]


def compare_sketches(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Jaccard, containments and the estimated overlap of two columns from their sketches,
    and sample matching values. Exact while both have at most ``k`` distinct values."""
    ha, hb = a["hashes"], b["hashes"]
    da, db = a["distinct"], b["distinct"]
    sa, sb = _hash_set(a), _hash_set(b)
    if not ha or not hb:
        return {"jaccard": 0.0, "containment_a": 0.0, "containment_b": 0.0, "overlap": 0, "samples": [],
                "exact": True}
    k = min(a.get("k", SKETCH_K), b.get("k", SKETCH_K))
    exact = da <= k and db <= k and len(ha) == da and len(hb) == db
    if exact:
        overlap = len(sa & sb)
        jaccard = overlap / (da + db - overlap) if (da + db - overlap) else 0.0
    else:
        union_k = sorted(sa | sb)[:k]
        # below the k-th smallest of the union, each sketch is complete for its own column
        limit = min(ha[-1] if da > len(ha) else math.inf, hb[-1] if db > len(hb) else math.inf)
        union_k = [h for h in union_k if h <= limit]
        both = sum(1 for h in union_k if h in sa and h in sb)
        jaccard = both / len(union_k) if union_k else 0.0
        overlap = min(da, db, round(jaccard / (1 + jaccard) * (da + db)))
    values = dict(zip(ha, a.get("values") or [], strict=False))
    samples = [values[h] for h in ha if h in sb and h in values][:SAMPLE_VALUES]
    return {"jaccard": round(jaccard, 6), "containment_a": round(overlap / da, 6) if da else 0.0,
            "containment_b": round(overlap / db, 6) if db else 0.0, "overlap": int(overlap), "samples": samples,
            "exact": exact}


def score_candidate(a: dict[str, Any], b: dict[str, Any], options: ExactMatch) -> dict[str, Any] | None:
    """The score and evidence of a suggested ExactMatch between two sketched columns, or
    None when either column is excluded or they share too little."""
    if options.eligible(a["distinct"], a["non_null"]) or options.eligible(b["distinct"], b["non_null"]):
        return None
    c = compare_sketches(a, b)
    if c["overlap"] < min(options.min_distinct, 3):
        return None
    score = max(c["containment_a"], c["containment_b"])
    return {"score": round(score, 6), **c}

"""Per-column catalog statistics of a dataset, computed by DuckDB over its parts.

One statement scans the parts once for the aggregates (HyperLogLog distinct counts, so the
cost stays linear and memory flat) and reads only a prefix of the rows for the samples.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from runyard.data.parts import connect, quote_ident, read_parts_sql
from runyard.data.types import Column

SAMPLES = 5
SAMPLE_SCAN_ROWS = 10_000  # samples come from the first rows, not a full scan
_NO_MIN_MAX = {"geo", "json"}  # an order over points or JSON text means nothing to a reader


def column_stats(paths: list[str], columns: list[Column]) -> dict[str, dict[str, Any]]:
    """``{name: {"null_count", "distinct_approx", "min", "max", "samples"}}`` with JSON-safe
    values (dates and timestamps as ISO strings; min/max None for geo and json columns)."""
    if not columns:
        return {}
    src = read_parts_sql(paths, columns, False)
    aggs = ["count(*) AS n"]
    samples = []
    for i, c in enumerate(columns):
        q = quote_ident(c.name)
        aggs.append(f"count({q}) AS c{i}")
        aggs.append(f"approx_count_distinct({q}) AS d{i}")
        if c.type not in _NO_MIN_MAX:
            aggs.append(f"min({q}) AS lo{i}")
            aggs.append(f"max({q}) AS hi{i}")
        samples.append(f"list(DISTINCT {q}) FILTER (WHERE {q} IS NOT NULL)[1:{SAMPLES}] AS s{i}")
    sql = (
        f"SELECT * FROM (SELECT {', '.join(aggs)} FROM ({src})) AS agg, "
        f"(SELECT {', '.join(samples)} FROM (SELECT * FROM ({src}) LIMIT {SAMPLE_SCAN_ROWS})) AS smp"
    )
    con = connect()
    try:
        row = con.sql(sql).to_arrow_table().to_pylist()[0]
    finally:
        con.close()
    n = row["n"]
    out: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(columns):
        out[c.name] = {
            "null_count": n - row[f"c{i}"],
            "distinct_approx": row[f"d{i}"],
            "min": _json_safe(row.get(f"lo{i}")),
            "max": _json_safe(row.get(f"hi{i}")),
            "samples": [_json_safe(v) for v in (row[f"s{i}"] or [])],
        }
    return out


def _json_safe(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return v

"""Links benchmark (issue 17, Figures): suggested ExactMatch links and GeoMatch.

1. **Suggested ExactMatch** across D datasets x C columns x N rows, written as Parquet parts
   and read back as the service reads them: every column sketched (``column_sketch``: NFKC,
   case-fold, trim, then a KMV sketch), then every cross-dataset column pair of one type
   family scored (``score_candidate``, the service's thresholds). The data (NumPy/Arrow) plants
   the true links: key columns drawn from shared entity domains (with case and whitespace
   noise), beside per-dataset unique ids, numbers, dates and low-cardinality columns (which
   overlap everywhere and must never link). Precision and recall are against the planted
   pairs. Baseline: the same linkage done naively in DuckDB (a distinct-overlap join per
   column pair), timed on a sample of pairs and extrapolated to all of them.
2. **GeoMatch** N x N points within 1 km over a country-sized area (density stated: the
   expected neighbours per point), by the grid join of ``geo_match``; checked exact against
   a brute-force haversine check of a 10k sample of left points (all right points within a
   conservative latitude band, which cannot drop a pair). Baseline: DuckDB's full cross join
   with a haversine filter on a sample of left points, extrapolated.

``--quick``: a small run (seconds). Default: a few minutes at most on a 2-core machine.
``--full``: the issue's sizes (20 x 8 x 1M rows; 1M x 1M points).
Prints one JSON report.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine  # noqa: E402

from runyard.data import links as L  # noqa: E402
from runyard.data.types import Column  # noqa: E402
from runyard.services.links import MIN_SCORE, SUGGEST_OPTIONS  # noqa: E402

DOMAINS = 10
KEY_COLUMNS = 3  # per dataset, from the shared domains


def _ids_text(prefix: str, values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(values), pa.string()), "")


def _noisy(text: pa.Array, rng: np.random.Generator) -> pa.Array:
    """About 10% of the values upper-cased and 10% padded: normalisation must see through it."""
    n = len(text)
    upper = pa.array(rng.random(n) < 0.1)
    padded = pa.array(rng.random(n) < 0.1)
    text = pc.if_else(upper, pc.utf8_upper(text), text)
    return pc.if_else(padded, pc.binary_join_element_wise(pa.scalar("  "), text, ""), text)


def make_datasets(root: Path, datasets: int, columns: int, rows: int,
                  seed: int = 17) -> tuple[list[dict[str, Any]], set[frozenset[str]]]:
    """Parquet parts and the planted links (pairs of "dataset.column" of one domain)."""
    rng = np.random.default_rng(seed)
    pool = max(100, rows // 2)  # a key column of N rows over N/2 entities covers ~86% of them
    made: list[dict[str, Any]] = []
    domain_of: dict[str, int] = {}
    for d in range(datasets):
        arrays: dict[str, pa.Array] = {}
        types: dict[str, str] = {}
        domains = rng.choice(DOMAINS, size=min(KEY_COLUMNS, columns), replace=False)
        for i, dom in enumerate(domains):
            name = f"key{i}"
            arrays[name] = _noisy(_ids_text(f"E{dom}-", rng.integers(0, pool, rows)), rng)
            types[name] = "string"
            domain_of[f"d{d}.{name}"] = int(dom)
        fillers = itertools.cycle(["uid", "status", "amount", "code", "day"])
        while len(arrays) < columns:
            kind = next(fillers)
            name = f"{kind}{len(arrays)}"
            if kind == "uid":  # unique per dataset: links to nothing
                arrays[name] = _ids_text(f"U{d}-{len(arrays)}-", rng.permutation(rows))
                types[name] = "string"
            elif kind == "status":  # the same 5 values everywhere: excluded by min_distinct
                arrays[name] = pa.array(np.array(["new", "open", "paid", "void", "late"])[rng.integers(0, 5, rows)])
                types[name] = "string"
            elif kind == "amount":  # a number drawn from a huge range: next to no overlap
                arrays[name] = pa.array(rng.integers(0, 10**15, rows))
                types[name] = "int"
            elif kind == "code":  # 20 values: variation far below 1%
                arrays[name] = _ids_text("K", rng.integers(0, 20, rows))
                types[name] = "string"
            else:
                arrays[name] = pa.array((np.datetime64("2000-01-01") + rng.integers(0, 9000, rows)).astype("M8[D]"))
                types[name] = "date"
        table = pa.table({"_id": pa.array(np.arange(1, rows + 1, dtype=np.int64)),
                          "_ingestion_id": pa.array(["ing_bench"] * rows),
                          "_ingested_at": pa.array(np.full(rows, np.datetime64("2026-01-01T00:00:00", "us")),
                                                   pa.timestamp("us", "UTC")), **arrays})
        path = root / f"d{d}.parquet"
        pq.write_table(table, path, row_group_size=256 * 1024)
        made.append({"name": f"d{d}", "paths": [str(path)], "columns": [Column(n, t) for n, t in types.items()]})
    truth = {frozenset((a, b)) for a, b in itertools.combinations(domain_of, 2)
             if a.split(".")[0] != b.split(".")[0] and domain_of[a] == domain_of[b]}
    return made, truth


def sketch_dataset(ds: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    con = L.connect(2048, 1)
    try:
        wanted = [c for c in ds["columns"] if L.family(c.type)]
        table = L.read_columns(con, ds["paths"], ds["columns"], [c.name for c in wanted])  # one scan, as the service
        return {f"{ds['name']}.{c.name}": (c.type, L.column_sketch(table.column(c.name), con=con)) for c in wanted}
    finally:
        con.close()


def bench_exact(datasets: int, columns: int, rows: int, workers: int, baseline_pairs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="links-bench-") as tmp:
        t0 = time.perf_counter()
        made, truth = make_datasets(Path(tmp), datasets, columns, rows)
        generate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            sketches: dict[str, tuple[str, dict[str, Any]]] = {}
            for part in pool.map(sketch_dataset, made):
                sketches.update(part)
        sketch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        found: set[frozenset[str]] = set()
        compared = 0
        for (a, (ta, sa)), (b, (tb, sb)) in itertools.combinations(sketches.items(), 2):
            if a.split(".")[0] == b.split(".")[0] or L.family(ta) != L.family(tb):
                continue
            compared += 1
            scored = L.score_candidate(sa, sb, SUGGEST_OPTIONS)
            if scored is not None and scored["score"] >= MIN_SCORE:
                found.add(frozenset((a, b)))
        score_s = time.perf_counter() - t0
        hits = len(found & truth)
        # the naive baseline: a DuckDB distinct-overlap join per column pair, on a sample of pairs
        string_cols = [(ds, c) for ds in made for c in ds["columns"] if c.type == "string"]
        pairs = [(x, y) for x, y in itertools.combinations(string_cols, 2) if x[0]["name"] != y[0]["name"]]
        rng = np.random.default_rng(3)
        sample = [pairs[i] for i in rng.choice(len(pairs), size=min(baseline_pairs, len(pairs)), replace=False)]
        con = L.connect(4096, workers)
        t0 = time.perf_counter()
        for (da, ca), (db, cb) in sample:
            def norm(ds: dict[str, Any], c: Column) -> str:
                return (f"SELECT DISTINCT lower(trim(nfc_normalize(\"{c.name}\"))) AS k "
                        f"FROM read_parquet('{ds['paths'][0]}')")
            con.execute(f"SELECT count(*) FROM ({norm(da, ca)}) a JOIN ({norm(db, cb)}) b USING (k)").fetchall()
        baseline_each = (time.perf_counter() - t0) / max(1, len(sample))
        con.close()
    return {
        "datasets": datasets, "columns_per_dataset": columns, "rows_per_dataset": rows,
        "sketched_columns": len(sketches), "column_pairs_scored": compared, "planted_links": len(truth),
        "suggested": len(found), "true_positives": hits,
        "precision": round(hits / len(found), 4) if found else None,
        "recall": round(hits / len(truth), 4) if truth else None,
        "generate_s": round(generate_s, 2), "sketch_s": round(sketch_s, 2), "score_s": round(score_s, 2),
        "suggest_total_s": round(sketch_s + score_s, 2), "workers": workers,
        "naive_duckdb_join": {"pairs_timed": len(sample), "per_pair_s": round(baseline_each, 4),
                              "all_pairs": compared,
                              "extrapolated_s": round(baseline_each * compared, 1)},
    }


def bench_geo(points: int, workers: int, check_sample: int, baseline_sample: int) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    neighbours = 30.0
    area_km2 = points * np.pi * 1.0 ** 2 / neighbours  # expected points within 1 km: ~neighbours
    lat0, side_km = 40.0, float(np.sqrt(area_km2))
    dlat = side_km / 111.19
    dlon = side_km / (111.19 * np.cos(np.radians(lat0 + dlat / 2)))

    def cloud(start: int) -> L.Side:
        return L.Side(np.arange(start, start + points, dtype=np.int64),
                      lat=lat0 + rng.random(points) * dlat, lon=5.0 + rng.random(points) * dlon)

    left, right = cloud(1), cloud(10_000_001)
    con = L.connect(16384, workers)
    t0 = time.perf_counter()
    result = L.geo_match(left, right, L.GeoMatch(1.0, "km"), max_pairs=500_000_000, con=con)
    grid_s = time.perf_counter() - t0
    con.close()
    # exactness: a sample of left points against every right point in a latitude band that
    # holds every point within 1 km (1 km is at most 0.009 degrees of latitude)
    order = np.argsort(right.lat)
    rlat, rlon, rid = right.lat[order], right.lon[order], right.ids[order]
    pick = rng.choice(points, size=min(check_sample, points), replace=False)
    band = 1.0 / 111.0 + 1e-6
    brute: set[tuple[int, int]] = set()
    t0 = time.perf_counter()
    for i in pick:
        lo, hi = np.searchsorted(rlat, [left.lat[i] - band, left.lat[i] + band])
        d = L.haversine_km(left.lat[i], left.lon[i], rlat[lo:hi], rlon[lo:hi])
        brute.update((int(left.ids[i]), int(j)) for j in rid[lo:hi][d <= 1.0])
    brute_s = time.perf_counter() - t0
    picked = set(int(x) for x in left.ids[pick])
    lid, rid_ = result.pairs.column("left_id").to_numpy(), result.pairs.column("right_id").to_numpy()
    mask = np.isin(lid, np.fromiter(picked, np.int64))
    grid = set(zip(lid[mask].tolist(), rid_[mask].tolist(), strict=True))
    # the naive baseline: a full cross join with a haversine filter, on a sample, extrapolated
    import duckdb
    con = duckdb.connect(config={"threads": workers, "memory_limit": "8GB"})
    sample = rng.choice(points, size=min(baseline_sample, points), replace=False)
    lt = pa.table({"id": left.ids[sample], "lat": left.lat[sample], "lon": left.lon[sample]})  # noqa: F841
    rt = pa.table({"id": right.ids, "lat": right.lat, "lon": right.lon})  # noqa: F841
    t0 = time.perf_counter()
    naive = con.execute(
        "SELECT count(*) FROM lt, rt WHERE 2 * 6371.0088 * asin(sqrt(pow(sin(radians(rt.lat - lt.lat) / 2), 2) + "
        "cos(radians(lt.lat)) * cos(radians(rt.lat)) * pow(sin(radians(rt.lon - lt.lon) / 2), 2))) <= 1.0"
    ).fetchall()[0][0]  # type: ignore[index]
    naive_s = time.perf_counter() - t0
    con.close()
    return {
        "points_each_side": points, "area_km2": round(area_km2), "expected_neighbours_within_1km": neighbours,
        "pairs": result.pairs.num_rows, "mean_neighbours": round(result.pairs.num_rows / points, 2),
        "grid_join_s": round(grid_s, 2),
        "exact_check": {"sample_left_points": len(pick), "brute_force_pairs": len(brute),
                        "grid_pairs": len(grid), "identical": grid == brute, "brute_force_s": round(brute_s, 2)},
        "naive_duckdb_cross_join": {"sample_left_points": len(sample), "pairs_found": int(naive),
                                    "sample_s": round(naive_s, 2),
                                    "extrapolated_s": round(naive_s * points / max(1, len(sample)), 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small run (seconds)")
    size.add_argument("--full", action="store_true", help="the issue's sizes (20 x 8 x 1M rows; 1M x 1M points)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.quick:
        d, c, n, pts, check, base = 6, 8, 20_000, 50_000, 2_000, 200
    elif args.full:
        d, c, n, pts, check, base = 20, 8, 1_000_000, 1_000_000, 10_000, 200
    else:
        d, c, n, pts, check, base = 20, 8, 200_000, 1_000_000, 10_000, 200
    report = {"benchmark": "links", "mode": "quick" if args.quick else "full" if args.full else "default",
              "machine": machine(), "exact_suggestions": bench_exact(d, c, n, args.workers, 20),
              "geo_match": bench_geo(pts, args.workers, check, base)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

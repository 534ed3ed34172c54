"""Data workspace benchmark: ingestion and query against DuckDB on the same data, one JSON report.

1. A CSV of ``--rows`` rows and 6 columns made with runyard.synth is uploaded with the SDK's
   multipart upload and ingested until queryable: rows/s, against DuckDB's own
   ``read_csv`` → Parquet on the same file in the same run, and the server's peak RSS
   (the API + worker process; the parsing child is reported apart).
2. JSON rows through ``POST …/rows`` in batches of 10,000: rows/s.
3. ``SELECT city, count(*), avg(amount) … GROUP BY city`` over the ingested rows through
   ``POST /query``: p50, against DuckDB on the same Parquet parts directly.

    .venv/bin/python benchmarks/data.py [--rows 10000000] [--json-rows 1000000] [--sandbox on]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _common import CUSTOMER_FIELDS, BenchServer, machine  # noqa: E402

QUERY = 'SELECT city, count(*) AS n, avg(amount) AS mean FROM "bench"."customers" GROUP BY city'


def make_csv(path: Path, rows: int) -> dict[str, Any]:
    from runyard import synth

    template = synth.parse_template({"name": "customers", "fields": CUSTOMER_FIELDS})
    plan = synth.plan_generation(template, count=rows, seed=7)
    start = time.perf_counter()
    with path.open("wb") as fh:
        synth.write(plan, "csv", fh, workers=2)
    return {"rows": rows, "bytes": path.stat().st_size, "generate_s": round(time.perf_counter() - start, 2)}


def duckdb_ingest(csv: Path, out_dir: Path) -> dict[str, Any]:
    import duckdb

    target = out_dir / "duckdb.parquet"
    con = duckdb.connect()
    start = time.perf_counter()
    rows = con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
                       ).fetchone()[0]
    elapsed = time.perf_counter() - start
    con.close()
    target.unlink()
    return {"seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed)}


class RssSampler:
    """Peak resident memory of a process and, apart, of its descendants (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_server_mb = 0.0
        self.peak_children_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _rss_mb(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _descendants(self, pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                kids = [int(p) for p in fh.read().split()]
        except OSError:
            return []
        return kids + [d for k in kids for d in self._descendants(k)]

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_server_mb = max(self.peak_server_mb, self._rss_mb(self.pid))
            children = sum(self._rss_mb(p) for p in self._descendants(self.pid))
            self.peak_children_mb = max(self.peak_children_mb, children)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload_ingest(server: BenchServer, csv: Path, rows: int) -> dict[str, Any]:
    from runyard.sdk import Client

    client = Client(base_url=server.base_url, api_key=server.key, timeout=600)
    client.namespaces.create("bench")
    with RssSampler(server.proc.pid) as rss:
        start = time.perf_counter()
        ingestion = client.datasets.upload(csv, "bench", "customers", wait=True, resume=False)
        elapsed = time.perf_counter() - start
    assert ingestion.status == "succeeded", ingestion
    info = client.datasets.get("bench", "customers")
    assert info.rows == rows, (info.rows, rows)
    record = httpx.get(f"{server.base_url}/api/v1/ingestions/{ingestion.id}", headers=server.headers()).json()
    client.close()
    created, started, finished = (datetime.fromisoformat(record[k]) for k in ("created_at", "started_at",
                                                                               "finished_at"))
    upload_s = elapsed - (finished - created).total_seconds()
    return {"seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed),
            "upload_s": round(upload_s, 2), "queued_s": round((started - created).total_seconds(), 2),
            "parse_and_commit_s": round((finished - started).total_seconds(), 2),
            "peak_server_rss_mb": round(rss.peak_server_mb), "peak_parser_rss_mb": round(rss.peak_children_mb)}


def json_rows(server: BenchServer, total: int, batch: int = 10_000, connections: int = 2) -> dict[str, Any]:
    rows = [{"id": i, "name": f"name {i}", "city": f"city {i % 500}", "amount": i * 0.5, "active": i % 2 == 0,
             "born": "1990-01-01"} for i in range(batch)]
    body = orjson.dumps(rows)
    batches = total // batch
    url = f"{server.base_url}/api/v1/namespaces/bench/datasets/json_rows/rows"
    with httpx.Client(headers=server.headers(), timeout=120) as c:
        assert c.post(url, params={"create": "true"}, content=body,
                      headers={"content-type": "application/json"}).status_code == 201  # makes the dataset

    def send(n: int) -> int:
        with httpx.Client(headers=server.headers(), timeout=120) as c:
            done = 0
            for _ in range(n):
                r = c.post(url, content=body, headers={"content-type": "application/json"})
                assert r.status_code == 201, r.text
                done += r.json()["ingested"]
            return done

    per = [batches // connections + (1 if i < batches % connections else 0) for i in range(connections)]
    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        ingested = sum(pool.map(send, per))
    elapsed = time.perf_counter() - start
    return {"rows": ingested, "batch": batch, "connections": connections, "seconds": round(elapsed, 2),
            "rows_per_s": round(ingested / elapsed), "goal_rows_per_s": 150_000,
            "goal_met": ingested / elapsed >= 150_000}


def query_compare(server: BenchServer, repeats: int = 7) -> dict[str, Any]:
    import duckdb

    api_times: list[float] = []
    with httpx.Client(headers=server.headers(), timeout=120) as c:
        for i in range(repeats + 1):
            start = time.perf_counter()
            r = c.post(f"{server.base_url}/api/v1/query", json={"query": QUERY})
            elapsed = time.perf_counter() - start
            assert r.status_code == 200, r.text
            if i:  # the first builds the preloaded query process
                api_times.append(elapsed)
    parts = sorted(str(p) for p in (server.data_dir / "blobs" / "datasets").glob("*/parts/*.parquet")
                   if "customers" in _dataset_of(server, p))
    files = ", ".join(f"'{p}'" for p in parts)
    direct: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"SELECT city, count(*), avg(amount) FROM read_parquet([{files}]) GROUP BY city").fetchall()
        con.close()
        direct.append(time.perf_counter() - start)
    api_p50, direct_p50 = statistics.median(api_times), statistics.median(direct)
    return {"api_p50_ms": round(api_p50 * 1000, 1), "duckdb_direct_p50_ms": round(direct_p50 * 1000, 1),
            "ratio": round(api_p50 / direct_p50, 2), "goal_ratio_le": 1.5, "goal_met": api_p50 / direct_p50 <= 1.5,
            "parts": len(parts)}


_DATASET_DIRS: dict[str, str] = {}


def _dataset_of(server: BenchServer, part: Path) -> str:
    """The name of the dataset a part belongs to (its dir is named by the dataset id)."""
    dataset_id = part.parent.parent.name
    if dataset_id not in _DATASET_DIRS:
        with httpx.Client(headers=server.headers(), timeout=30) as c:
            for d in c.get(f"{server.base_url}/api/v1/datasets", params={"limit": 100}).json()["items"]:
                _DATASET_DIRS[d["id"]] = d["name"]
    return _DATASET_DIRS.get(dataset_id, "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--json-rows", type=int, default=1_000_000)
    parser.add_argument("--sandbox", default="on", choices=["on", "off"])
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "data", "machine": machine(), "sandbox": args.sandbox}
    with tempfile.TemporaryDirectory(prefix="runyard-data-bench-") as tmp:
        csv = Path(tmp) / "customers.csv"
        report["csv"] = make_csv(csv, args.rows)
        server = BenchServer(args.database_url, slots=8, sandbox=args.sandbox)
        try:
            baseline = duckdb_ingest(csv, Path(tmp))
            ingest = upload_ingest(server, csv, args.rows)
            ingest["duckdb_read_csv_to_parquet_rows_per_s"] = baseline["rows_per_s"]
            ingest["ratio_to_duckdb"] = round(ingest["rows_per_s"] / baseline["rows_per_s"], 2)
            ingest["goal_ratio_ge"] = 0.5
            ingest["goal_met"] = ingest["ratio_to_duckdb"] >= 0.5
            ingest["goal_peak_server_rss_mb_le"] = 500
            report["csv_upload_ingest"] = ingest
            report["query_group_by"] = query_compare(server)
            report["json_rows"] = json_rows(server, args.json_rows)
        finally:
            server.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Synthetic data benchmark: runyard.synth vs Faker vs Mimesis, one JSON report.

The 6-field `customers` template (id, name, email, city, born, amount) is generated
to CSV (and JSON, Parquet) with runyard; Faker and Mimesis produce the same fields in
a per-row loop written with the csv module (on fewer rows, reported as rows/s). Peak RSS
is measured for 10M rows streamed, in a child process so the parent's imports and
earlier runs do not count.

    .venv/bin/python benchmarks/synth.py [--rows 1000000] [--rss-rows 10000000]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CUSTOMER_FIELDS  # noqa: E402
from _common import machine as common_machine  # noqa: E402

CUSTOMERS6: dict[str, Any] = {"name": "customers", "locale": "en_US", "fields": CUSTOMER_FIELDS}
HEADER = ["id", "name", "email", "city", "born", "amount"]


class _Counter:
    """A sink that only counts bytes, so the figures measure generation + encoding."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def machine() -> dict[str, Any]:
    import duckdb
    import faker
    import mimesis
    import numpy
    import pyarrow

    return {**common_machine(), "versions": {
        "numpy": numpy.__version__, "pyarrow": pyarrow.__version__, "duckdb": duckdb.__version__,
        "faker": faker.VERSION, "mimesis": mimesis.__version__}}


def runyard_rate(fmt: str, rows: int, workers: int, seed: int = 1) -> dict[str, Any]:
    from runyard import synth

    template = synth.parse_template(CUSTOMERS6)
    plan = synth.plan_generation(template, count=rows, seed=seed)
    sink = _Counter()
    start = time.perf_counter()
    synth.write(plan, fmt, sink, workers=workers)
    elapsed = time.perf_counter() - start
    return {"rows": rows, "workers": workers, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed),
            "bytes": sink.bytes}


def faker_rate(rows: int) -> dict[str, Any]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(1)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    lo, hi = dt.date(1940, 1, 1), dt.date(2008, 12, 31)
    start = time.perf_counter()
    for i in range(rows):
        first, last = fake.first_name(), fake.last_name()
        email = f"{first}.{last}@{fake.free_email_domain()}".lower()
        writer.writerow([i + 1, f"{first} {last}", email, fake.city(), fake.date_between(lo, hi),
                         round(fake.pyfloat(min_value=0, max_value=1000), 2)])
    elapsed = time.perf_counter() - start
    return {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed)}


def mimesis_rate(rows: int) -> dict[str, Any]:
    from mimesis import Address, Datetime, Numeric, Person
    from mimesis.locales import Locale

    person, address = Person(Locale.EN, seed=1), Address(Locale.EN, seed=1)
    when, numeric = Datetime(Locale.EN, seed=1), Numeric(seed=1)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    start = time.perf_counter()
    for i in range(rows):
        first, last = person.first_name(), person.last_name()
        writer.writerow([i + 1, f"{first} {last}", person.email(), address.city(),
                         when.date(start=1940, end=2008), round(numeric.float_number(0, 1000), 2)])
    elapsed = time.perf_counter() - start
    return {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed)}


def child_stream(rows: int, workers: int) -> None:
    """Child process body: stream `rows` CSV rows to a counting sink; print timing."""
    result = runyard_rate("csv", rows, workers)
    print(json.dumps(result))


def peak_rss(rows: int, workers: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", str(rows), "--workers", str(workers)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux: the largest child waited for so far (only this one).
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", type=int, default=10_000_000)
    parser.add_argument("--faker-rows", type=int, default=20_000)
    parser.add_argument("--mimesis-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per CPU (at most 4)")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = args.workers or max(1, min(4, cpus))
    if args.child:
        child_stream(args.child, workers)
        return
    # First, while this process is still small: a child's peak RSS also counts the
    # parent image it was forked from, so measuring later would inflate the figure.
    stream_10m = peak_rss(args.rss_rows, workers)
    runyard_rate("csv", 100_000, workers)  # warm up: locale pools, imports
    report = {
        "benchmark": "synth.customers6",
        "machine": machine(),
        "template_fields": HEADER,
        "runyard": {
            "csv": runyard_rate("csv", args.rows, workers),
            "csv_single_thread": runyard_rate("csv", args.rows, 1),
            "json": runyard_rate("json", args.rows, workers),
            "ndjson": runyard_rate("ndjson", args.rows, workers),
            "parquet": runyard_rate("parquet", args.rows, workers),
        },
        "faker_loop_csv": faker_rate(args.faker_rows),
        "mimesis_loop_csv": mimesis_rate(args.mimesis_rows),
        "stream_10m_csv": stream_10m,
        "goals": {"csv_rows_per_s": 2_000_000, "peak_rss_mb_10m": 300},
    }
    csv_rate = report["runyard"]["csv"]["rows_per_s"]
    report["speedup_vs_faker"] = round(csv_rate / report["faker_loop_csv"]["rows_per_s"], 1)
    report["speedup_vs_mimesis"] = round(csv_rate / report["mimesis_loop_csv"]["rows_per_s"], 1)
    report["goals_met"] = {
        "csv_rows_per_s": csv_rate >= 2_000_000,
        "peak_rss_mb_10m": report["stream_10m_csv"]["peak_rss_mb"] <= 300,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

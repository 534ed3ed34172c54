"""Run search benchmark (issue 19, Search): p50/p99 of POST /runs/search's queries over N runs.

Seeds ``--runs`` runs (default 1,000,000) straight into a fresh store — SQLite in a temp dir,
or a new database on the PostgreSQL server of ``--database-url`` (dropped afterwards) — by a
bulk insert with the indexes made after the load, then times a listed set of searches
through ``RunSearchService.search`` (the service the API calls; no HTTP), each ``--repeat``
times with varying values, newest 50 first:

* ``indexed``: equality and ``in`` on tool, status, project, session, batch and example
  within a created_at range — goal p50 ≤ 100 ms;
* ``scan``: contains/startswith, inputs.* fields, and with_total_count — goal p50 ≤ 500 ms.

The runs all belong to one workspace (the worst case for a workspace's searches): 100 tools,
statuses mostly succeeded, 70% with one of 200 projects, 40% with one of 50k sessions, 20%
in one of 2,000 batches with one of 10,000 example ids, created over 90 days.

``--runs 2000`` is a smoke run of seconds (tests/search runs it so this script cannot rot).
Prints one JSON report (figures + machine).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine, percentile  # noqa: E402

from runyard.ids import _encode  # noqa: E402
from runyard.schemas.run_search import RunSearchRequest  # noqa: E402
from runyard.services.access import Principal  # noqa: E402
from runyard.services.run_search import RunSearchService  # noqa: E402
from runyard.store.db import Database  # noqa: E402
from runyard.store.migrate import upgrade  # noqa: E402
from runyard.store.tables import runs  # noqa: E402

WORKSPACE = "ws_bench"
TOOLS = 100
PROJECTS = 200
SESSIONS = 50_000
BATCHES = 2_000
EXAMPLES = 10_000
WORKERS = 20
DAYS = 90
STATUSES = (("succeeded", 80), ("failed", 12), ("cancelled", 3), ("timed_out", 2), ("running", 1), ("queued", 2))
WORDS = [f"{a}{b}" for a in ("red", "blue", "green", "amber", "violet", "black", "white", "grey") for b in
         ("fox", "owl", "cat", "eel", "elk", "bee", "yak", "ant", "emu", "gnu", "ram", "hen", "cow", "pig", "koi",
          "jay")]
APPS = ("web", "cli", "notebook", "pipeline", "api")
# For the bulk load only (SQLite): no fsync, a 1 GB page cache and in-memory temporary
# b-trees, so the load and the index builds do not wait on the disk.
LOAD_PRAGMAS = ("PRAGMA synchronous=OFF", "PRAGMA cache_size=-1000000", "PRAGMA temp_store=MEMORY")
INDEXED_GOAL_MS = 100.0
SCAN_GOAL_MS = 500.0


# -- seeding ----------------------------------------------------------------------------
def make_chunk(start: int, n: int, total: int, now: datetime, postgres: bool) -> list[tuple[Any, ...]]:
    """Runs ``start`` .. ``start + n`` of ``total`` (oldest first, ids time-ordered like real
    ones) as rows of ``runs``' columns, already encoded for the database (JSON text; SQLite's
    or COPY's timestamp text). Drawn with NumPy and built a column at a time (list
    comprehensions, JSON written as text), since a dict and json.dumps per row made the
    load of a million runs minutes of Python."""
    rng = np.random.default_rng(start + 7)
    first = (now - timedelta(days=DAYS)).timestamp()
    step = DAYS * 86_400 / max(total, 1)
    created_s = first + (np.arange(start, start + n) + rng.random(n)) * step
    started_s = created_s + rng.integers(1, 500, n) / 1000
    finished_s = started_s + rng.integers(5, 60_000, n) / 1000
    created, started, finished = (_timestamps(a, postgres) for a in (created_s, started_s, finished_s))
    weights = np.array([w for _, w in STATUSES], dtype=float)
    status = [STATUSES[s][0] for s in rng.choice(len(STATUSES), n, p=weights / weights.sum()).tolist()]
    done = [s not in ("running", "queued") for s in status]
    tool = rng.integers(0, TOOLS, n).tolist()
    version = rng.integers(1, 6, n).tolist()
    project = _sometimes(rng, n, 0.7, PROJECTS, "project-{:03d}")
    app = _sometimes(rng, n, 0.5, len(APPS), None)
    session = _sometimes(rng, n, 0.4, SESSIONS, "session-{:05d}")
    batch = _sometimes(rng, n, 0.2, BATCHES, "batch-{:04d}")
    example_n = rng.integers(0, EXAMPLES, n).tolist()
    example = [None if b is None else f"example-{e:05d}" for b, e in zip(batch, example_n, strict=True)]
    source = _sometimes(rng, n, 0.3, 1 << 40, "git:{:010x}")
    number, word = rng.integers(0, 1000, n).tolist(), rng.integers(0, len(WORDS), n).tolist()
    file = rng.integers(0, 100_000, n).tolist()
    worker, log_bytes = rng.integers(0, WORKERS, n).tolist(), rng.integers(0, 100_000, n).tolist()
    peak = (40 + rng.random(n) * 200).tolist()
    wall = ((finished_s - started_s) * 1000).tolist()
    tag_columns = (("project", project), ("app", app), ("session", session), ("batch_id", batch),
                   ("example_id", example), ("source_ref", source))
    tags = ["{" + ", ".join(f'"{k}": "{v}"' for k, v in pairs if v is not None) + "}"
            for pairs in zip(*[[(key, v) for v in values] for key, values in tag_columns], strict=True)]
    no = "f" if postgres else 0
    ids = [f"run_{_encode(int(s * 1000), 10)}{start + j:016d}" for j, s in enumerate(created_s.tolist())]
    columns: dict[str, list[Any]] = {
        "id": ids, "tool_id": [f"tool_bench{t:03d}" for t in tool], "tool_name": [f"tool-{t:03d}" for t in tool],
        "tool_version": version, "tool_version_id": [f"tv_bench{t:03d}" for t in tool], "status": status,
        "inputs": [f'{{"n": {a}, "word": "{WORDS[w]}", "file": "s3://bucket/data/{f:05d}.csv"}}'
                   for a, w, f in zip(number, word, file, strict=True)],
        "output": [('{"ok": true}' if s == "succeeded" else '{"ok": false}') if d else None
                   for s, d in zip(status, done, strict=True)],
        "error": ['{"type": "ValueError", "message": "bad", "traceback": null}' if s == "failed" else None
                  for s in status],
        "tags": tags, "session": session, "batch_id": batch, "example_id": example, "project": project,
        "app": app, "source_ref": source, "worker_id": [f"wrk_bench{w:02d}" for w in worker],
        "usage": [f'{{"wall_ms": {w:.1f}, "cpu_s": {w / 2000:.3f}, "peak_rss_mb": {p:.1f}}}' if d else None
                  for w, p, d in zip(wall, peak, done, strict=True)],
        "log_bytes": log_bytes, "created_at": created, "queued_at": created,
        "started_at": [t if s != "queued" else None for t, s in zip(started, status, strict=True)],
        "finished_at": [t if d else None for t, d in zip(finished, done, strict=True)],
    }
    constant = {"workspace_id": WORKSPACE, "input_files": "{}", "type": "tool", "trigger": "api",
                "triggered_by": "usr_bench", "user_id": "usr_bench", "attempt": 1, "max_attempts": 1,
                "cancel_requested": no, "requires_confirmation": no, "log_truncated": no}
    return list(zip(*[columns.get(c.key) or [constant.get(c.key)] * n for c in runs.c], strict=True))


def _sometimes(rng: np.random.Generator, n: int, share: float, choices: int, form: str | None) -> list[str | None]:
    """``n`` values, each one of ``choices`` (formatted by ``form``; None: one of APPS) for
    ``share`` of them, None for the rest."""
    present = (rng.random(n) < share).tolist()
    drawn = rng.integers(0, choices, n).tolist()
    if form is None:
        return [APPS[d] if p else None for p, d in zip(present, drawn, strict=True)]
    return [form.format(d) if p else None for p, d in zip(present, drawn, strict=True)]


def _timestamps(seconds: np.ndarray, postgres: bool) -> list[str]:
    """Epoch seconds as the text the database stores: ``2026-01-02 03:04:05.123456`` (how
    SQLAlchemy writes SQLite datetimes), with ``+00:00`` for COPY into PostgreSQL."""
    text = np.datetime_as_string((seconds * 1e6).astype("datetime64[us]"), unit="us")
    suffix = "+00:00" if postgres else ""
    return [t.replace("T", " ") + suffix for t in text.tolist()]


def _index_ddl(db: Database) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every index on runs but the primary key's and the unique ones."""
    with db.read() as conn:
        if db.is_postgres:
            rows = conn.execute(sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'runs' AND indexname LIKE 'ix_%'"))
        else:
            rows = conn.execute(sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' "
                "AND name LIKE 'ix_%' AND sql IS NOT NULL"))
        return [(r[0], r[1]) for r in rows]


def seed(db: Database, n: int, now: datetime, chunk: int = 50_000) -> dict[str, float]:
    """Bulk-load ``n`` runs: drop the secondary indexes, insert (COPY on PostgreSQL,
    executemany on SQLite, in one transaction), then build the indexes again and ANALYZE,
    all on one connection of its own (so SQLite's load PRAGMAs end with it)."""
    indexes = _index_ddl(db)
    raw = db.engine.raw_connection()
    raw.detach()  # closed for good after, not handed back to the pool
    try:
        cur = raw.cursor()
        if not db.is_postgres:  # the engine's connections run in autocommit mode: one explicit transaction
            for pragma in LOAD_PRAGMAS:
                cur.execute(pragma)
            cur.execute("BEGIN")
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        t0 = time.perf_counter()
        for start in range(0, n, chunk):
            _load(db, raw, make_chunk(start, min(chunk, n - start), n, now, db.is_postgres))
        loaded = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _, ddl in indexes:
            cur.execute(ddl)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
        cur.close()
    finally:
        raw.close()
    return {"insert_s": round(loaded, 1), "index_s": round(time.perf_counter() - t1, 1)}


def _load(db: Database, raw: Any, rows: list[tuple[Any, ...]]) -> None:
    names = [c.key for c in runs.c]
    cur = raw.cursor()
    if db.is_postgres:
        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(_copy_text(v) for v in row) + "\n")
        buffer.seek(0)
        statement = f"COPY runs ({', '.join(names)}) FROM STDIN"
        if hasattr(cur, "copy"):  # psycopg 3
            with cur.copy(statement) as copy:
                copy.write(buffer.read())
        else:  # psycopg2
            cur.copy_expert(statement, buffer)
    else:
        cur.executemany(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)
    cur.close()


def _copy_text(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


# -- searches ---------------------------------------------------------------------------
def _since(now: datetime, days: float) -> str:
    return (now - timedelta(days=days)).isoformat().replace("+00:00", "Z")


def _p(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


Search = Callable[[random.Random, datetime], dict[str, Any]]


def _tool(rng: random.Random) -> str:
    return f"tool-{rng.randrange(TOOLS):03d}"


SEARCHES: list[tuple[str, str, Search]] = [
    # indexed: equality / in on an indexed column within a time range
    ("tool eq, last 7 days", "indexed", lambda r, now: {"props": [
        _p("tool_name", "eq", _tool(r)), _p("created_at", "gte", _since(now, 7))]}),
    ("tool in (3), last 7 days", "indexed", lambda r, now: {"props": [
        _p("tool_name", "in", [_tool(r) for _ in range(3)]), _p("created_at", "gte", _since(now, 7))]}),
    ("status eq failed, last 7 days", "indexed", lambda r, now: {"props": [
        _p("status", "eq", "failed"), _p("created_at", "gte", _since(now, 7))]}),
    ("status in (failed, timed_out), days 30-37 ago", "indexed", lambda r, now: {"props": [
        _p("status", "in", ["failed", "timed_out"]), _p("created_at", "gte", _since(now, 37)),
        _p("created_at", "lt", _since(now, 30))]}),
    ("project eq, last 30 days", "indexed", lambda r, now: {"props": [
        _p("project", "eq", f"project-{r.randrange(PROJECTS):03d}"), _p("created_at", "gte", _since(now, 30))]}),
    ("tags.session eq, last 90 days", "indexed", lambda r, now: {"props": [
        _p("tags.session", "eq", f"session-{r.randrange(SESSIONS):05d}"), _p("created_at", "gte", _since(now, 90))]}),
    ("batch_id eq, last 90 days", "indexed", lambda r, now: {"props": [
        _p("batch_id", "eq", f"batch-{r.randrange(BATCHES):04d}"), _p("created_at", "gte", _since(now, 90))]}),
    ("example_id eq, last 30 days", "indexed", lambda r, now: {"props": [
        _p("example_id", "eq", f"example-{r.randrange(EXAMPLES):05d}"), _p("created_at", "gte", _since(now, 30))]}),
    ("tool eq and status eq, last day", "indexed", lambda r, now: {"props": [
        _p("tool_name", "eq", _tool(r)), _p("status", "eq", "succeeded"), _p("created_at", "gte", _since(now, 1))]}),
    # scan: substrings, nested input values, totals
    ("example_id contains, last 7 days", "scan", lambda r, now: {"props": [
        _p("example_id", "contains", f"{r.randrange(1000):03d}"), _p("created_at", "gte", _since(now, 7))]}),
    ("example_id contains, all time", "scan", lambda r, now: {"props": [
        _p("example_id", "contains", f"{r.randrange(10_000):04d}")]}),
    ("example_id startswith, all time", "scan", lambda r, now: {"props": [
        _p("example_id", "startswith", f"example-{r.randrange(1000):03d}")]}),
    ("tool_name contains, last 7 days", "scan", lambda r, now: {"props": [
        _p("tool_name", "contains", f"-{r.randrange(100):02d}"), _p("created_at", "gte", _since(now, 7))]}),
    ("source_ref startswith, all time", "scan", lambda r, now: {"props": [
        _p("source_ref", "startswith", f"git:{r.getrandbits(12):03x}")]}),
    ("inputs.word eq, last day", "scan", lambda r, now: {"props": [
        _p("inputs.word", "eq", r.choice(WORDS)), _p("created_at", "gte", _since(now, 1))]}),
    ("inputs.n gt, tool eq, last 30 days", "scan", lambda r, now: {"props": [
        _p("inputs.n", "gt", 900 + r.randrange(90)), _p("tool_name", "eq", _tool(r)),
        _p("created_at", "gte", _since(now, 30))]}),
    ("inputs.file contains, last day", "scan", lambda r, now: {"props": [
        _p("inputs.file", "contains", f"/{r.randrange(100):02d}"), _p("created_at", "gte", _since(now, 1))]}),
    ("status eq failed, last 7 days, with_total_count", "scan", lambda r, now: {"props": [
        _p("status", "eq", "failed"), _p("created_at", "gte", _since(now, 7))], "with_total_count": True}),
    ("project eq, all time, with_total_count", "scan", lambda r, now: {"props": [
        _p("project", "eq", f"project-{r.randrange(PROJECTS):03d}")], "with_total_count": True}),
    ("tool in (3), last 30 days, with_total_count", "scan", lambda r, now: {"props": [
        _p("tool_name", "in", [_tool(r) for _ in range(3)]), _p("created_at", "gte", _since(now, 30))],
        "with_total_count": True}),
]


def time_searches(db: Database, now: datetime, repeat: int) -> list[dict[str, Any]]:
    service = RunSearchService(_HasDb(db))
    principal = Principal(token_id="tok_bench", workspace_id=WORKSPACE, role="viewer", user_id="usr_bench")
    rng = random.Random(11)
    results = []
    for name, group, make in SEARCHES:
        service.search(principal, RunSearchRequest.model_validate({**make(rng, now), "limit": 50}))  # warm
        times, rows, totals = [], [], []
        for _ in range(repeat):
            request = RunSearchRequest.model_validate({**make(rng, now), "limit": 50})
            t0 = time.perf_counter()
            page = service.search(principal, request)
            times.append((time.perf_counter() - t0) * 1000)
            rows.append(len(page["items"]))
            if page["total"] is not None:
                totals.append(page["total"])
        goal = INDEXED_GOAL_MS if group == "indexed" else SCAN_GOAL_MS
        p50 = statistics.median(times)
        results.append({"search": name, "group": group, "goal_p50_ms": goal, "p50_ms": round(p50, 2),
                        "p99_ms": round(percentile(times, 99), 2), "mean_rows": round(statistics.mean(rows), 1),
                        **({"mean_total": round(statistics.mean(totals))} if totals else {}),
                        "meets_goal": p50 <= goal})
    return results


class _HasDb:
    def __init__(self, db: Database) -> None:
        self.db = db


# -- databases --------------------------------------------------------------------------
def _fresh_postgres(url: str) -> tuple[str, Callable[[], None]]:
    """A new database on ``url``'s server, and how to drop it."""
    name = f"runyard_search_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    fresh = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return fresh, drop


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=25, help="timed executions of each search")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (a fresh database is made on it and dropped); default: SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database (PostgreSQL)")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    drop: Callable[[], None] = lambda: None  # noqa: E731
    tmp = None
    if args.database_url:
        url, drop = _fresh_postgres(args.database_url)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="runyard-search-bench-")
        url = f"sqlite:///{tmp.name}/runyard.db"
    db = Database(url)
    try:
        upgrade(db.engine)
        seeded = seed(db, args.runs, now)
        load_start = [round(x, 1) for x in os.getloadavg()]
        searches = time_searches(db, now, args.repeat)
    finally:
        db.dispose()
        if not args.keep:
            drop()
        if tmp is not None:
            tmp.cleanup()
    report = {
        "benchmark": "run search (issue 19)", "database": "postgresql" if args.database_url else "sqlite",
        "runs": args.runs, "repeat": args.repeat, "seed": seeded, "searches": searches,
        "indexed_goal_met": all(s["meets_goal"] for s in searches if s["group"] == "indexed"),
        "scan_goal_met": all(s["meets_goal"] for s in searches if s["group"] == "scan"),
        "machine": machine(),
        # This machine's load when timing began and ended (other work sharing its CPUs slows every figure).
        "load_average": {"start": load_start, "end": [round(x, 1) for x in os.getloadavg()]},
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

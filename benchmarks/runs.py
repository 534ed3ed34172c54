"""Run latency and throughput through the HTTP API, against floors measured in the same run.

Usage: python benchmarks/runs.py [--postgres postgresql://…] [--quick] [--sandbox-cost] [--no-celery]
Prints one JSON report. Figures (issue 2): 500 sequential sync no-op runs (p50/p99),
2,000 async no-op runs submitted at once (runs/s until all terminal), 40 sequential
fib(10) runs (total seconds); floors: /healthz round trip, fork+exit, `python -c pass`, and
the least a fork-per-run engine costs here (`bare_fork_per_run`).
The same three figures again for tools deployed with `reuse_process` (`reused_process`).
Many runs through the official SDK (`sdk_many`: `AsyncClient.runs.create_many` then
`runs.wait(ids)`; `sdk_create_each`: 32 concurrent `runs.create` then `runs.wait(ids)`),
beside the lean client's figure and Celery's (`celery`: a prefork worker with as many
processes as the server has worker slots, Redis broker and backend on 127.0.0.1:6379,
`delay()` then `get()` on each; needs the `bench` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    FIB,
    NOOP,
    BenchServer,
    LeanClient,
    async_throughput,
    bare_fork_per_run,
    cow_fault_us,
    cpu_per_run,
    deploy,
    fib_sequential,
    machine,
    percentile,
    sync_latency,
)

SLOTS = 8  # the server's worker slots, and the Celery worker's processes


def floors(client: LeanClient) -> dict[str, float]:
    http = []
    for _ in range(500):
        t = time.perf_counter()
        client.request("GET", "/healthz")
        http.append((time.perf_counter() - t) * 1000)
    forks = []
    cpu0, child0 = time.process_time(), os.times()
    for _ in range(200):
        t = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        forks.append((time.perf_counter() - t) * 1000)
    child1 = os.times()
    fork_cpu_ms = (time.process_time() - cpu0 + child1.children_user + child1.children_system
                   - child0.children_user - child0.children_system) * 1000 / 200
    starts = []
    for _ in range(10):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        starts.append((time.perf_counter() - t) * 1000)
    return {"healthz_p50_ms": round(percentile(http, 50), 3), "fork_exit_p50_ms": round(percentile(forks, 50), 3),
            "fork_exit_cpu_ms": round(fork_cpu_ms, 3), "python_c_pass_p50_ms": round(percentile(starts, 50), 2),
            "cow_page_fault_us": sorted(cow_fault_us() for _ in range(3))[1],
            "bare_fork_per_run": bare_fork_per_run()}


def sdk_throughput(server: BenchServer, n: int, *, batch: bool, tool: str = "noop-sdk") -> dict[str, Any]:
    """``n`` runs through the official ``AsyncClient``: ``runs.create_many`` (one request per
    1,000 runs) when ``batch``, else 32 concurrent ``runs.create``; then ``runs.wait(ids)``."""
    from runyard import AsyncClient

    async def go() -> tuple[float, list[Any]]:
        async with AsyncClient(api_key=server.key, base_url=server.base_url, timeout=120) as client:
            specs = [{"tool": tool, "tags": {"batch_id": "bench-sdk"}}] * n
            started = time.perf_counter()
            if batch:
                ids = [item.run.id for item in await client.runs.create_many(specs) if item.run is not None]
            else:
                gate = asyncio.Semaphore(32)

                async def create(spec: dict[str, Any]) -> str:
                    async with gate:
                        return (await client.runs.create(spec["tool"], tags=spec["tags"])).id

                ids = list(await asyncio.gather(*(create(spec) for spec in specs)))
            submitted = time.perf_counter() - started
            assert len(set(ids)) == n
            return submitted, await client.runs.wait(ids, timeout=600)

    cpu0, client0 = server.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    submitted, runs = asyncio.run(go())
    elapsed = time.perf_counter() - started
    cpu = cpu_per_run(cpu0, server.cpu_seconds(), time.process_time() - client0, n)
    return {"runs": n, "how": "create_many + wait(ids)" if batch else "32 concurrent create + wait(ids)",
            "submit_s": round(submitted, 3), "all_terminal_s": round(elapsed, 3),
            "runs_per_s": round(n / elapsed, 1), "failed": sum(r.status != "succeeded" for r in runs),
            "cpu_per_run": cpu}


def celery_throughput(n: int, concurrency: int) -> dict[str, Any]:
    """Celery's figure for the same no-op (see _celery.py); skipped, with the reason, when
    celery or Redis is not there."""
    try:
        from _celery import CeleryBench
    except ImportError as exc:
        return {"skipped": f"{exc} (install the bench extra)"}
    try:
        bench_ = CeleryBench(concurrency)
    except Exception as exc:
        return {"skipped": f"no Celery worker: {exc}"[:300]}
    try:
        bench_.throughput(min(n, 100))  # warm-up: every worker process forked and connected
        return bench_.throughput(n)
    finally:
        bench_.close()


def bench(database_url: str | None, quick: bool, sandbox: str = "on") -> dict[str, Any]:
    server = BenchServer(database_url, slots=SLOTS, sandbox=sandbox)
    try:
        client = LeanClient(server.base_url, server.headers())
        try:
            for name, code in (("noop", NOOP), ("noop-async", NOOP), ("noop-sdk", NOOP), ("fib", FIB)):
                deploy(client, name, code)
                deploy(client, f"{name}-reused", code, reuse_process=True)
            for tool in ["noop"] * 20 + ["fib", "noop-reused", "noop-async-reused", "fib-reused"]:
                client.request("POST", "/api/v1/runs?wait=30", {"tool": tool})  # warm-up; lays out the code
            report: dict[str, Any] = {"floors": floors(client)}
            report["sync_noop"] = sync_latency(server, client, 100 if quick else 500)
            # fib before the burst: 2,000 runs leave the database work to do afterwards
            # (PostgreSQL's autovacuum), which is not what a run costs.
            report["fib10_sequential"] = fib_sequential(client, 40)
            report["async_noop"] = async_throughput(server, client, 400 if quick else 2000)
            report["sdk_many"] = sdk_throughput(server, 400 if quick else 2000, batch=True)
            report["sdk_create_each"] = sdk_throughput(server, 400 if quick else 2000, batch=False)
            # The same figures for tools deployed with reuse_process: successive runs of a
            # version share a process, so no fork, exit or copy-on-write per run.
            report["reused_process"] = {
                "sync_noop": sync_latency(server, client, 100 if quick else 500, tool="noop-reused"),
                "fib10_sequential": fib_sequential(client, 40, tool="fib-reused"),
                "async_noop": async_throughput(server, client, 400 if quick else 2000, tool="noop-async-reused"),
                # Celery's prefork workers keep their processes too: the like-for-like SDK figure.
                "sdk_many": sdk_throughput(server, 400 if quick else 2000, batch=True, tool="noop-sdk-reused"),
            }
        finally:
            client.close()
        report["goals"] = {
            "sync_p50_le_5ms": report["sync_noop"]["p50_ms"] <= 5,
            "async_ge_1000_per_s": report["async_noop"]["runs_per_s"] >= 1000,
            "fib40_le_0_3s": report["fib10_sequential"]["total_s"] <= 0.3,
            "reused_process_async_ge_1000_per_s": report["reused_process"]["async_noop"]["runs_per_s"] >= 1000,
        }
        report["ratios"] = {
            "sync_p50_over_healthz_p50": round(report["sync_noop"]["p50_ms"] / report["floors"]["healthz_p50_ms"], 2),
            "fib_run_over_python_start": round(report["fib10_sequential"]["total_s"] * 1000 / 40
                                               / report["floors"]["python_c_pass_p50_ms"], 3),
            "async_over_bare_fork_per_run": round(report["async_noop"]["runs_per_s"]
                                                  / report["floors"]["bare_fork_per_run"]["runs_per_s"], 3),
        }
        return report
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=os.environ.get("RUNYARD_TEST_DATABASE_URL"),
                        help="also measure on this PostgreSQL (a scratch database is created)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sandbox-cost", action="store_true",
                        help="also measure SQLite with RUNYARD_SANDBOX=off, and report what the sandbox costs")
    parser.add_argument("--no-celery", action="store_true", help="leave out the Celery comparison")
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "runs", "machine": machine(), "sqlite": bench(None, args.quick)}
    if not args.no_celery:
        # After the server has stopped: Celery gets the machine as runyard had it.
        report["celery"] = celery = celery_throughput(400 if args.quick else 2000, SLOTS)
        sqlite = report["sqlite"]
        if "runs_per_s" in celery:
            report["many_runs"] = {
                "sdk_create_many_runs_per_s": sqlite["sdk_many"]["runs_per_s"],
                "sdk_create_each_runs_per_s": sqlite["sdk_create_each"]["runs_per_s"],
                "lean_client_runs_per_s": sqlite["async_noop"]["runs_per_s"],
                "celery_runs_per_s": celery["runs_per_s"],
                "sdk_over_celery": round(sqlite["sdk_many"]["runs_per_s"] / celery["runs_per_s"], 3),
                "goal_sdk_ge_celery": sqlite["sdk_many"]["runs_per_s"] >= celery["runs_per_s"],
                # A process kept across runs, as Celery's prefork pool keeps its workers.
                "sdk_reused_process_runs_per_s": sqlite["reused_process"]["sdk_many"]["runs_per_s"],
                "sdk_reused_process_over_celery": round(
                    sqlite["reused_process"]["sdk_many"]["runs_per_s"] / celery["runs_per_s"], 3),
            }
    if args.sandbox_cost:
        report["sqlite_sandbox_off"] = off = bench(None, args.quick, sandbox="off")
        on = report["sqlite"]
        report["sandbox_cost"] = {
            "sync_p50_ms_added": round(on["sync_noop"]["p50_ms"] - off["sync_noop"]["p50_ms"], 3),
            "async_runs_per_s_on_over_off": round(on["async_noop"]["runs_per_s"] / off["async_noop"]["runs_per_s"], 3),
            "fib40_s_on_over_off": round(on["fib10_sequential"]["total_s"] / off["fib10_sequential"]["total_s"], 3),
            "reused_sync_p50_ms_added": round(on["reused_process"]["sync_noop"]["p50_ms"]
                                              - off["reused_process"]["sync_noop"]["p50_ms"], 3),
        }
    if args.postgres:
        import uuid

        import psycopg
        name = f"runyard_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            report["postgres"] = bench(args.postgres.rpartition("/")[0] + "/" + name, args.quick)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

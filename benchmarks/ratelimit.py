"""Workspace plan limits (issue 18): what counting costs, and how exact it is across nodes.

1. Cost per request: ``Limiter.hit`` called in this process, p50/p99 in µs, for each
   backend — Redis (one Lua script round trip on loopback), database leases (SQLite file;
   PostgreSQL too with ``--database-url``), and this process's own count. Goal: p50 ≤ 200 µs.
2. Accuracy: two real API server processes (``runyard server``) on loopback sharing the
   database (and Redis when configured), a workspace on a custom plan of ``--limit``
   requests per minute, and clients sending well above that rate to both nodes within one
   window. Admitted must be within 2 % of the limit with Redis, and between
   ``limit − 2 × lease`` and ``limit`` with database leases.

    python benchmarks/ratelimit.py [--database-url postgresql://…] [--redis-url redis://…]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import machine, percentile  # noqa: E402

from runyard.config import normalise_database_url  # noqa: E402
from runyard.services.errors import RateLimited  # noqa: E402
from runyard.services.ratelimit import LeaseLimiter, Limiter, LocalLimiter, RedisLimiter  # noqa: E402
from runyard.store.db import Database  # noqa: E402
from runyard.store.migrate import upgrade  # noqa: E402

GOAL_P50_US = 200.0


# -- 1. cost per hit ------------------------------------------------------------------------
def hit_cost(limiter: Limiter, hits: int) -> dict[str, Any]:
    key = f"bench:{uuid.uuid4().hex}"
    for _ in range(200):  # warm up: connections, prepared statements, the script's SHA
        limiter.hit(key, 10**9, 3600)
    samples = []
    for _ in range(hits):
        t = time.perf_counter_ns()
        limiter.hit(key, 10**9, 3600)
        samples.append((time.perf_counter_ns() - t) / 1000)
    samples.sort()
    return {"hits": hits, "p50_us": round(percentile(samples, 50), 1), "p99_us": round(percentile(samples, 99), 1),
            "mean_us": round(sum(samples) / len(samples), 1)}


def lease_cost(url: str, hits: int, limit: int) -> dict[str, Any]:
    """Database leases at a realistic limit (a lease of limit/50 every 50th hit or so)."""
    db = Database(url)
    upgrade(db.engine)
    limiter = LeaseLimiter(db)
    key = f"bench:{uuid.uuid4().hex}"
    samples = []
    for _ in range(hits):
        t = time.perf_counter_ns()
        try:
            limiter.hit(key, limit, 3600)
        except RateLimited:
            break
        samples.append((time.perf_counter_ns() - t) / 1000)
    samples.sort()
    db.dispose()
    return {"hits": len(samples), "limit": limit, "lease": limiter.batch(limit),
            "p50_us": round(percentile(samples, 50), 1), "p99_us": round(percentile(samples, 99), 1),
            "mean_us": round(sum(samples) / len(samples), 1)}


# -- 2. accuracy with two nodes ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One ``runyard server`` (API only) on a shared data directory and database."""

    def __init__(self, data_dir: Path, admin_key: str, database_url: str | None, redis_url: str | None) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env.update(RUNYARD_ADMIN_KEY=admin_key, RUNYARD_DATA_DIR=str(data_dir), RUNYARD_PORT=str(self.port),
                   RUNYARD_WORKER_SLOTS="0")
        if database_url:
            env["RUNYARD_DATABASE_URL"] = database_url
        if redis_url:
            env["RUNYARD_REDIS_URL"] = redis_url
        self.log = data_dir / f"node-{self.port}.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "runyard.cli.serve", "server"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(self.log.read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def fresh_postgres(server_url: str) -> tuple[str, Any]:
    """A database of its own on the PostgreSQL server of ``server_url``: (its URL, drop)."""
    import psycopg

    name = f"runyard_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{server_url.rpartition('/')[0]}/{name}", drop


def two_nodes(server_url: str | None, redis_url: str | None, limit: int, requests: int,
              clients: int) -> dict[str, Any]:
    database_url, drop = fresh_postgres(server_url) if server_url else (None, lambda: None)
    try:
        return _two_nodes(database_url, redis_url, limit, requests, clients)
    finally:
        drop()


def _two_nodes(database_url: str | None, redis_url: str | None, limit: int, requests: int,
               clients: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="runyard-bench-rl-") as tmp:
        admin_key = "ry_bench_" + secrets.token_urlsafe(16)
        first = Node(Path(tmp), admin_key, database_url, redis_url)
        nodes = [first]
        try:
            nodes.append(Node(Path(tmp), admin_key, database_url, redis_url))
            operator = {"Authorization": f"Bearer {admin_key}"}
            api = f"{first.url}/api/v1"
            plan = httpx.put(f"{api}/workspace/plan", headers=operator, timeout=30,
                             json={"plan": "custom", "requests_per_minute": limit}).json()
            # The load comes from a user of the workspace (the operator's keys are not limited).
            httpx.post(f"{api}/users", headers=operator, json={"username": "loader", "role": "member"}, timeout=30)
            key = httpx.post(f"{api}/tokens", headers=operator, timeout=30,
                             json={"name": "loader", "role": "member", "user": "loader"}).json()["key"]
            time.sleep(5.5)  # every node's plan cache has expired: all count against the plan
            left = 60 - time.time() % 60
            if left < 40:  # all the load inside one window
                time.sleep(left + 0.2)
            statuses: list[int] = []
            lock = threading.Lock()
            per_client = requests // clients

            def load(i: int) -> None:
                mine = []
                with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
                    for n in range(per_client):
                        node = nodes[(i + n) % len(nodes)]
                        mine.append(client.get(f"{node.url}/api/v1/tools").status_code)
                with lock:
                    statuses.extend(mine)

            started = time.time()
            threads = [threading.Thread(target=load, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.time() - started
            window_start = int(started // 60) * 60
            assert time.time() < window_start + 60, "the load crossed a window boundary"
        finally:
            for node in nodes:
                node.stop()
    admitted = statuses.count(200)
    lease = max(1, limit // 50)
    backend = "redis" if redis_url else "database leases"
    out = {"counted_by": plan.get("counted_by"), "database": "postgresql" if database_url else "sqlite",
           "limit_per_min": limit, "sent": len(statuses), "seconds": round(elapsed, 2),
           "rate_per_min": round(len(statuses) / elapsed * 60), "admitted": admitted,
           "refused_429": statuses.count(429), "other": len(statuses) - admitted - statuses.count(429),
           "error_pct": round(abs(admitted - limit) / limit * 100, 2)}
    if redis_url:
        out["goal"] = "admitted within 2% of the limit"
        out["goal_met"] = abs(admitted - limit) <= 0.02 * limit
    else:
        out["lease"] = lease
        out["goal"] = f"limit - 2 x lease ({limit - 2 * lease}) <= admitted <= limit"
        out["goal_met"] = limit - 2 * lease <= admitted <= limit
    out["backend"] = backend
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hits", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--requests", type=int, default=1_200, help="sent to the two nodes in one window")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--redis-url", default=os.environ.get("RUNYARD_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--database-url", default=os.environ.get("RUNYARD_BENCH_DATABASE_URL"),
                        help="also measure on this PostgreSQL database (its own tables are created)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runyard-bench-rl-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/limits.db"
        redis_limiter = RedisLimiter(args.redis_url, prefix=f"runyard:bench:{uuid.uuid4().hex}:")
        cost = {
            "redis": hit_cost(redis_limiter, args.hits),
            "database_lease_sqlite": lease_cost(sqlite_url, args.hits, 10**6),
            "database_lease_sqlite_limit_600": lease_cost(sqlite_url, 600, 600),
            "local": hit_cost(LocalLimiter(), args.hits),
        }
        redis_limiter.close()
        if args.database_url:
            url, drop = fresh_postgres(args.database_url)
            try:
                cost["database_lease_postgresql"] = lease_cost(normalise_database_url(url), args.hits, 10**6)
            finally:
                drop()
    accuracy = [two_nodes(None, None, args.limit, args.requests, args.clients),
                two_nodes(None, args.redis_url, args.limit, args.requests, args.clients)]
    if args.database_url:
        accuracy += [two_nodes(args.database_url, None, args.limit, args.requests, args.clients),
                     two_nodes(args.database_url, args.redis_url, args.limit, args.requests, args.clients)]
    report = {
        "benchmark": "ratelimit",
        "machine": machine(),
        "hit_cost": cost,
        "two_nodes": accuracy,
        "goals": {"hit_p50_us": GOAL_P50_US, "redis_admitted_within_pct": 2, "lease_admitted_within": "2 leases"},
        "goals_met": {
            "hit_p50_us": all(c["p50_us"] <= GOAL_P50_US for c in cost.values()),
            "two_nodes": all(a["goal_met"] for a in accuracy),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

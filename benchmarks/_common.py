"""Shared benchmark plumbing: machine description, percentiles, a server subprocess, and the
run measurements (sync latency, async throughput, sequential fib) the benchmarks share."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "python": sys.version.split()[0], "platform": platform.platform()}


def cow_fault_us(pages: int = 8192) -> float:
    """What one copy-on-write page fault costs on this machine (a forked run pays ~500+)."""
    buf = bytearray(pages * 4096)
    for i in range(0, len(buf), 4096):
        buf[i] = 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        t = time.perf_counter()
        for i in range(0, len(buf), 4096):
            buf[i] = 2
        os.write(w, repr(time.perf_counter() - t).encode())
        os._exit(0)
    os.close(w)
    elapsed = float(os.read(r, 100))
    os.close(r)
    os.waitpid(pid, 0)
    return round(elapsed / pages * 1e6, 2)


# The least a fork-per-run engine can cost in this CPython: per run, a bare interpreter
# (-I -S: no site, ~7 MB) forks a child that reads a request from a pipe, answers a
# no-op's result and exits, and reaps it. No limits, dirs, log pipes or process group.
_BARE_FORKER = """
import json, os, sys, time
def forker(n):
    for _ in range(n):
        r1, w1 = os.pipe(); r2, w2 = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w1); os.close(r2)
            request = json.loads(os.read(r1, 65536))
            os.write(w2, json.dumps({"id": request["id"], "output": None}).encode())
            os._exit(0)
        os.close(r1); os.close(w2)
        os.write(w1, b'{"id": "run_x", "inputs": {}}'); os.close(w1)
        os.read(r2, 65536); os.close(r2)
        os.waitpid(pid, 0)
n, parallel = int(sys.argv[1]), int(sys.argv[2])
started, before = time.perf_counter(), os.times()
forkers = []
for _ in range(parallel):
    pid = os.fork()
    if pid == 0:
        forker(n // parallel)
        os._exit(0)
    forkers.append(pid)
for pid in forkers:
    os.waitpid(pid, 0)
elapsed, after = time.perf_counter() - started, os.times()
cpu = after.children_user + after.children_system - before.children_user - before.children_system
print(json.dumps({"runs_per_s": round(n / elapsed, 1), "cpu_ms_per_run": round(cpu * 1000 / n, 3)}))
"""


def bare_fork_per_run(runs: int = 2000) -> dict[str, Any]:
    """Runs/s and CPU per run of the least fork-per-run engine (above), one forker per core:
    the ceiling of any engine that forks a process per run, on this machine."""
    cores = os.cpu_count() or 1
    out = subprocess.run([sys.executable, "-I", "-S", "-c", _BARE_FORKER, str(runs), str(cores)],
                         check=True, capture_output=True, text=True).stdout
    return {"forkers": cores, **json.loads(out)}

class LeanClient:
    """A keep-alive HTTP/1.1 client from the standard library (``http.client``) that sends
    JSON and reads JSON. httpx costs several times more CPU per request, which on a
    2-core machine the server under test would pay for: latencies and floors are both
    measured with this one."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = {**headers, "Content-Type": "application/json"}
        self.last_used = 0.0

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        if time.monotonic() - self.last_used > 2:
            self.conn.close()  # the server drops idle keep-alive connections after 5 s: start afresh
        self.last_used = time.monotonic()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=payload, headers=self.headers)
                response = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection; a GET may be sent again.
                self.conn.close()
                if attempt == 2 or method != "GET":
                    raise
        data = response.read()
        return response.status, (json.loads(data) if data else None)

    def close(self) -> None:
        self.conn.close()


async def lean_post_many(host: str, port: int, headers: dict[str, str], path: str, bodies: list[Any],
                         connections: int) -> list[Any]:
    """POST every body over ``connections`` keep-alive connections at once (asyncio streams,
    HTTP/1.1 by hand: a status line, headers, a Content-Length body); the parsed replies."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    queue = list(enumerate(bodies))
    replies: list[Any] = [None] * len(bodies)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue:
                index, body = queue.pop()
                payload = json.dumps(body).encode()
                writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Type: application/json\r\n"
                             f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                status_and_headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in status_and_headers.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                status = int(status_and_headers.split(b" ", 2)[1])
                reply = json.loads(await reader.readexactly(length)) if length else None
                if status >= 300:
                    raise RuntimeError(f"POST {path} answered {status}: {reply}")
                replies[index] = reply
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return replies


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rpartition(")")[2].split()[1])
    except OSError:
        return None


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() == name:
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM a process started in a session of its own, SIGKILL its group if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


# The customer template both synth benchmarks generate (the streaming one adds two fields).
CUSTOMER_FIELDS: list[dict[str, Any]] = [
    {"name": "id", "generator": "sequence", "start": 1},
    {"name": "name", "generator": "person.full_name"},
    {"name": "email", "generator": "person.email"},
    {"name": "city", "generator": "address.city"},
    {"name": "born", "generator": "date", "min": "1940-01-01", "max": "2008-12-31"},
    {"name": "amount", "generator": "float", "distribution": "lognormal", "mean": 4, "sigma": 1, "decimals": 2},
]


class BenchServer:
    def __init__(self, database_url: str | None = None, slots: int = 8, sandbox: str = "on") -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="runyard-bench-")
        self.data_dir = Path(self.tmp.name)
        self.database_url = database_url
        self.key = "ry_bench_" + secrets.token_urlsafe(16)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env.update(RUNYARD_ADMIN_KEY=self.key, RUNYARD_DATA_DIR=str(self.data_dir), RUNYARD_PORT=str(self.port),
                   RUNYARD_WORKER_SLOTS=str(slots), RUNYARD_SANDBOX=sandbox)
        if database_url:
            env["RUNYARD_DATABASE_URL"] = database_url
        self.proc = subprocess.Popen([sys.executable, "-m", "runyard.cli.serve", "up"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=(self.data_dir / "server.log").open("wb"),
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError((self.data_dir / "server.log").read_text())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by the API/worker process, by the engine (the fork server with
        every run's child, reaped or alive) and, on PostgreSQL, by the database server's
        processes on this machine (all of them: backends, WAL writer..., reaped or alive), from /proc."""
        tick = os.sysconf("SC_CLK_TCK")

        def fields(pid: int) -> list[int]:
            with open(f"/proc/{pid}/stat") as fh:
                return [int(v) for v in fh.read().rpartition(")")[2].split()[11:15]]

        def children(pid: int) -> list[int]:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as fh:
                    return [int(p) for p in fh.read().split()]
            except OSError:
                return []

        def tree(pid: int) -> float:
            """CPU of ``pid``, of its children it reaped, and of its live descendants
            (a process kept for reuse runs many runs and is reaped only when it retires)."""
            try:
                total = sum(fields(pid)) / tick
            except OSError:
                return 0.0
            return total + sum(tree(kid) for kid in children(pid))

        server = fields(self.proc.pid)
        engine = sum(tree(pid) for pid in children(self.proc.pid))
        out = {"server": (server[0] + server[1]) / tick, "engine": engine}
        if self.database_url:
            # From the postmaster down: the backends it reaped count too (a connection
            # that closed between two readings would otherwise take its CPU with it).
            postgres = set(_pids_named("postgres"))
            database = sum(tree(pid) for pid in postgres if _parent(pid) not in postgres)
            out["database"] = database
        return out

    def close(self) -> None:
        stop_group(self.proc)
        self.tmp.cleanup()


# The tools the run benchmarks deploy.
NOOP = "def main():\n    return None\n"
FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\ndef main(n: int = 10):\n    return fib(n)\n"


def deploy(client: LeanClient, name: str, code: str, **config: Any) -> None:
    status, body = client.request("POST", "/api/v1/tools", {"name": name, "code": code, **config})
    assert status == 201, body


def cpu_per_run(before: dict[str, float], after: dict[str, float], client_s: float, n: int) -> dict[str, Any]:
    """CPU ms per run by process, and the ceilings they imply on this machine's cores."""
    per = {k: (after[k] - before[k]) * 1000 / n for k in before}
    per["load_generator"] = client_s * 1000 / n
    cores = os.cpu_count() or 1
    total = sum(per.values())
    out: dict[str, Any] = {f"{k}_ms": round(v, 3) for k, v in per.items()}
    out["total_ms"] = round(total, 3)
    # What the cores could sustain if only the engine (fork + child per run) used them,
    # and with everything measured here; 1,000 runs/s needs total_ms <= cores.
    out["ceiling_engine_only_runs_per_s"] = round(cores * 1000 / per["engine"], 1) if per["engine"] else None
    out["ceiling_all_runs_per_s"] = round(cores * 1000 / total, 1) if total else None
    return out


def sync_latency(server: BenchServer, client: LeanClient, n: int, tool: str = "noop",
                 inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``n`` sync runs one after the other (``POST /runs?wait=30``): latency percentiles and CPU per run."""
    body = {"tool": tool} if inputs is None else {"tool": tool, "inputs": inputs}
    latencies = []
    cpu0, client0 = server.cpu_seconds(), time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        status, run = client.request("POST", "/api/v1/runs?wait=30", body)
        latencies.append((time.perf_counter() - t) * 1000)
        assert status == 201 and run["status"] == "succeeded", run
    cpu = cpu_per_run(cpu0, server.cpu_seconds(), time.process_time() - client0, n)
    return {"runs": n, "p50_ms": round(percentile(latencies, 50), 3), "p90_ms": round(percentile(latencies, 90), 3),
            "p99_ms": round(percentile(latencies, 99), 3),
            "mean_ms": round(sum(latencies) / n, 3), "cpu_per_run": cpu}


def async_throughput(server: BenchServer, client: LeanClient, n: int, connections: int = 32,
                     tool: str = "noop-async", poll_s: float = 0.05) -> dict[str, Any]:
    """``n`` runs submitted at once over ``connections`` connections; runs/s until all are
    terminal (polled every ``poll_s``)."""
    bodies = [{"tool": tool, "tags": {"batch_id": "bench"}}] * n
    cpu0, client0 = server.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    replies = asyncio.run(lean_post_many("127.0.0.1", server.port, server.headers(), "/api/v1/runs", bodies,
                                         connections))
    submitted = time.perf_counter() - started
    assert len({r["id"] for r in replies}) == n
    pending = f"/api/v1/runs?tool={tool}&status=queued&status=running&limit=1"  # any left? (no count)
    # Polled every 50 ms by default: often enough for the figure (2,000 runs take seconds),
    # rarely enough not to take the server's CPU while it drains the queue.
    while client.request("GET", pending)[1]["items"]:
        time.sleep(poll_s)
    elapsed = time.perf_counter() - started
    cpu = cpu_per_run(cpu0, server.cpu_seconds(), time.process_time() - client0, n)
    failed_page = client.request(
        "GET", f"/api/v1/runs?tool={tool}&status=failed&limit=100&include_total=true")[1]
    failure_types: dict[str, int] = {}
    for run in failed_page["items"]:
        kind = f"{run['error']['type']}: {run['error']['message']}"[:200]
        failure_types[kind] = failure_types.get(kind, 0) + 1
    return {"runs": n, "connections": connections, "submit_s": round(submitted, 3),
            "all_terminal_s": round(elapsed, 3), "runs_per_s": round(n / elapsed, 1),
            "failed": failed_page["total"], "failure_types": failure_types, "cpu_per_run": cpu}


def fib_sequential(client: LeanClient, n: int, tool: str = "fib") -> dict[str, float]:
    """``n`` sync ``fib(10)`` runs one after the other: total seconds."""
    started = time.perf_counter()
    for _ in range(n):
        status, run = client.request("POST", "/api/v1/runs?wait=30", {"tool": tool, "inputs": {"n": 10}})
        assert status == 201 and run["output"] == 55, run
    return {"runs": n, "total_s": round(time.perf_counter() - started, 4)}

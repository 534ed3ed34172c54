"""Engine benchmark: no-op runs through Executor.submit(...).wait(); prints a JSON report.

    .venv/bin/python benchmarks/engine.py [--runs N] [--inflight K]

Sequential latency (one run at a time) and throughput with K submits in flight, on the
fork-server fast path. Each run gets a fresh workdir like a worker would give it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from runyard.engine.executor import ExecRequest, Executor, Limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cow_fault_us  # noqa: E402

TOOL = "def noop():\n    return None\n"
# A tool importing a library: what preloaded imports are for (httpx is one of runyard's own dependencies).
IMPORTING_TOOL = "import httpx\n\n\ndef noop():\n    return httpx.__version__\n"


def make_request(root: Path, i: int, reuse: bool = False, source: str = "src", data: str = "data",
                 python: str | None = None) -> ExecRequest:
    """A run's request as a worker makes it: dirs under the data dir's work root, which
    the run's child makes (or takes, recycled) itself."""
    workdir = root / data / "work" / f"r{i}"
    return ExecRequest(
        run_id=f"run_{i}",
        source_dir=root / source,
        module="tool",
        entrypoint="noop",
        inputs={},
        env={},
        workdir=workdir,
        output_dir=workdir.with_name(workdir.name + ".out"),
        limits=Limits(timeout_s=30),
        reuse_process=reuse,
        python=python,
    )


def sequential(executor: Executor, root: Path, n: int, offset: int, reuse: bool = False,
               source: str = "src", python: str | None = None) -> dict[str, float]:
    latencies = []
    data = executor.data_dir.name
    t0 = time.perf_counter()
    for i in range(n):
        req = make_request(root, offset + i, reuse, source, data, python)
        t = time.perf_counter()
        result = executor.submit(req).wait(30)
        latencies.append((time.perf_counter() - t) * 1000)
        assert result.status == "succeeded", result
    total = time.perf_counter() - t0
    latencies.sort()
    return {
        "runs": n,
        "mean_ms": round(statistics.fmean(latencies), 3),
        "p50_ms": round(latencies[n // 2], 3),
        "p99_ms": round(latencies[int(n * 0.99) - 1], 3),
        "runs_per_s": round(n / total, 1),
    }


def concurrent(executor: Executor, root: Path, n: int, inflight: int, offset: int,
               reuse: bool = False) -> dict[str, float]:
    slots = threading.Semaphore(inflight)
    done = threading.Event()
    remaining = [n]
    lock = threading.Lock()
    failures = []
    requests = [make_request(root, offset + i, reuse) for i in range(n)]

    def finished(result) -> None:
        if result.status != "succeeded":
            failures.append(result)
        slots.release()
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    t0 = time.perf_counter()
    for req in requests:
        slots.acquire()
        executor.submit(req).add_done_callback(finished)
    done.wait(120)
    total = time.perf_counter() - t0
    assert not failures, failures[:3]
    return {"runs": n, "inflight": inflight, "runs_per_s": round(n / total, 1), "seconds": round(total, 3)}


def first_then_later(root: Path, name: str, preload_servers: int, runs: int, offset: int,
                     **request: object) -> dict[str, object]:
    """A tool's first run on a fresh executor, then (once a preloading fork server is up,
    when there may be one) a few runs for what it learned to be preloaded too, then
    ``runs`` measured ones."""
    executor = Executor(root / name, preload_servers=preload_servers)
    executor.start()
    try:
        first = sequential(executor, root, 1, offset, **request)["p50_ms"]  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        while preload_servers and not executor.preloads.servers() and time.monotonic() < deadline:
            time.sleep(0.05)
        sequential(executor, root, 3, offset + 1, **request)  # type: ignore[arg-type]
        time.sleep(1)
        later = sequential(executor, root, runs, offset + 10, **request)  # type: ignore[arg-type]
        return {"first_run_ms": first, "later_runs": later}
    finally:
        executor.close()


def preloaded_imports(root: Path, runs: int) -> dict[str, object]:
    """A tool importing httpx: its first run, then its runs once the executor has learned
    its imports and a fork server preloads them; the same runs with preloading off."""
    (root / "importing").mkdir()
    (root / "importing" / "tool.py").write_text(IMPORTING_TOOL)
    report: dict[str, object] = {"tool": "import httpx"}
    for label, servers in (("preloaded", 1), ("not_preloaded", 0)):
        report[label] = first_then_later(root, f"data-{label}", servers, runs, 3_000_000 + 100_000 * servers,
                                         source="importing")
    report["later_p50_ratio_not_preloaded_over_preloaded"] = round(
        report["not_preloaded"]["later_runs"]["p50_ms"] / report["preloaded"]["later_runs"]["p50_ms"], 1)  # type: ignore[index]
    return report


def own_interpreter(root: Path, runs: int) -> dict[str, object]:
    """A no-op tool under an interpreter of its own (a virtualenv, as tools with
    requirements get): forked from a fork server running under it, or (servers off)
    starting that interpreter for each run."""
    import venv

    venv.create(root / "venv", with_pip=False)
    python = str(root / "venv" / "bin" / "python")
    report: dict[str, object] = {"interpreter": "a virtualenv (python -m venv)"}
    for label, servers in (("fork_server_under_it", 1), ("interpreter_per_run", 0)):
        report[label] = first_then_later(root, f"data-venv-{label}", servers, runs, 5_000_000 + 100_000 * servers,
                                         python=python)
    report["later_p50_ratio_per_run_over_forked"] = round(
        report["interpreter_per_run"]["later_runs"]["p50_ms"]  # type: ignore[index]
        / report["fork_server_under_it"]["later_runs"]["p50_ms"], 1)  # type: ignore[index]
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--inflight", type=int, nargs="*", default=[4, 8])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runyard-bench-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        (root / "src" / "tool.py").write_text(TOOL)
        executor = Executor(root / "data")
        t = time.perf_counter()
        executor.start()
        start_ms = (time.perf_counter() - t) * 1000
        try:
            sequential(executor, root, 50, 0)  # warm-up
            report = {
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "cow_page_fault_us": cow_fault_us(),
                "fork_server_start_ms": round(start_ms, 1),
                "sequential": sequential(executor, root, args.runs, 10_000),
                "concurrent": [
                    concurrent(executor, root, args.runs, k, 100_000 * (j + 1))
                    for j, k in enumerate(args.inflight)
                ],
                # The tool deployed with reuse_process: its runs share a process.
                "preloaded_imports": preloaded_imports(root, min(args.runs, 100)),
                "own_interpreter": own_interpreter(root, min(args.runs, 100)),
                "reused_process": {
                    "sequential": sequential(executor, root, args.runs, 1_000_000, reuse=True),
                    "concurrent": [
                        concurrent(executor, root, args.runs, k, 2_000_000 + 100_000 * j, reuse=True)
                        for j, k in enumerate(args.inflight)
                    ],
                },
            }
        finally:
            executor.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

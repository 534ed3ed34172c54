"""Workflow runs through the HTTP API, against single runs measured in the same run.

Usage: python benchmarks/workflows.py [--database-url postgresql://…] [--quick]
Prints one JSON report. On a server with 8 worker slots:

1. ``single_noop_latency_ms``: one no-op tool run end to end (``POST /runs?wait=30``), p50/p90:
   the baseline a step is compared with.
2. ``sequential_10_ms``: a workflow of 10 no-op steps, each needing the one before and
   given its output, end to end (``POST /runs {workflow}?wait=60``), p50. Goal:
   ``sequential_10 <= 10 × single + 20 ms``. Where the time goes, from the runs' own
   timestamps: ``step_gap_ms`` (one step's ``finished_at`` to the next one's ``started_at``,
   from ``GET /runs/{id}/trace``) split into the advance (finished → next step created) and
   the dispatch (created → started); the steps' own time; the workflow's start and end.
3. ``fanout_100_runs_per_s``: one ``for_each`` over 100 items (``max_parallel: 100``) of the
   same no-op, items/s of the whole workflow, beside 100 async no-op runs created at once
   then waited for (``async_throughput``, as benchmarks/runs.py measures it).

Then, on a server with one worker slot:

4. Windmill's published shape: one workflow of 40 sequential ``fib(10)`` steps, seconds
   per run (p50), for a fresh process per step and for a tool deployed with
   ``reuse_process`` (the analogue of Windmill's dedicated worker), beside 40 sequential
   ``fib(10)`` runs through the API and the published figures (another machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    FIB,
    NOOP,
    BenchServer,
    LeanClient,
    async_throughput,
    deploy,
    fib_sequential,
    machine,
    percentile,
    sync_latency,
)

# The no-op step: its input plus one, so that the chain proves each step got the output before.
STEP = "def main(x: int = 0):\n    return x + 1\n"
SEQUENTIAL_STEPS = 10
FANOUT_ITEMS = 100
FIB_STEPS = 40
# Windmill's published benchmark (windmill.dev docs, "Benchmarks"): 40
# sequential fib(10) tasks in one flow, one worker on an AWS m4.large (2 vCPUs), seconds.
PUBLISHED_40_FIB10_S = {
    "hatchet": 1.22,
    "windmill_dedicated_worker": 2.09,
    "temporal": 2.97,
    "windmill": 4.38,
    "prefect": 4.87,
    "kestra": 6.04,
    "airflow": 116.0,
}


def ts(value: str | None) -> float:
    """An RFC 3339 timestamp from the API as seconds since the epoch."""
    assert value is not None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def save_workflow(client: LeanClient, definition: dict[str, Any]) -> None:
    status, body = client.request("POST", "/api/v1/workflows", {"definition": definition})
    assert status in (200, 201), body


def chain(name: str, tool: str, steps: int, *, pass_output: bool, inputs: dict[str, Any]) -> dict[str, Any]:
    """A workflow of ``steps`` steps of ``tool``, each needing the one before (and given its
    output as ``x`` when ``pass_output``)."""
    items: list[dict[str, Any]] = []
    for i in range(steps):
        step: dict[str, Any] = {"id": f"s{i}", "uses": tool}
        if i:
            step["needs"] = f"s{i - 1}"
        if pass_output:
            step["with"] = {"x": "${{ inputs.x }}" if i == 0 else f"${{{{ steps.s{i - 1}.output }}}}"}
        else:
            step["with"] = inputs
        items.append(step)
    properties = {"x": {"type": "integer"}} if pass_output else {}
    return {"name": name, "inputs": {"type": "object", "properties": properties}, "steps": items,
            "outputs": {"last": f"${{{{ steps.s{steps - 1}.output }}}}"}}


def fanout(name: str, tool: str, items: int) -> dict[str, Any]:
    return {"name": name, "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
            "steps": [{"id": "each", "uses": tool, "for_each": "inputs.items", "max_parallel": items,
                       "with": {"x": "${{ item }}"}}],
            "outputs": {"n": "${{ len(steps.each.output) }}"}}


def run_workflow(client: LeanClient, name: str, inputs: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """One workflow run end to end: (seconds, the finished run)."""
    started = time.perf_counter()
    status, run = client.request("POST", "/api/v1/runs?wait=120", {"workflow": name, "inputs": inputs})
    elapsed = time.perf_counter() - started
    assert status == 201 and run["status"] == "succeeded", run
    return elapsed, run


def timeline(client: LeanClient, run: dict[str, Any]) -> dict[str, float]:
    """Where a sequential workflow run's time went, in ms, from the runs' own timestamps: the
    trace's gaps between one step's end and the next one's start, split with the step runs'
    ``created_at`` into the advance (end → next created) and the dispatch (created → started)."""
    status, trace = client.request("GET", f"/api/v1/runs/{run['id']}/trace")
    assert status == 200, trace
    steps = sorted((t for t in trace["items"] if t["run_id"]), key=lambda t: ts(t["started_at"]))
    status, page = client.request("GET", f"/api/v1/runs?parent_run_id={run['id']}&limit=1000&order=asc")
    assert status == 200, page
    created = {r["id"]: ts(r["created_at"]) for r in page["items"]}
    gaps, advances, dispatches, runs_ = [], [], [], []
    for before, after in zip(steps, steps[1:], strict=False):
        gaps.append(ts(after["started_at"]) - ts(before["finished_at"]))
        advances.append(created[after["run_id"]] - ts(before["finished_at"]))
    for step in steps:
        dispatches.append(ts(step["started_at"]) - created[step["run_id"]])
        runs_.append(ts(step["finished_at"]) - ts(step["started_at"]))
    return {
        "step_gap_ms": statistics.fmean(gaps) * 1000,
        "advance_ms": statistics.fmean(advances) * 1000,  # a step's end → the next step's run created
        "dispatch_ms": statistics.fmean(dispatches) * 1000,  # a step's run created → started on a worker
        "step_run_ms": statistics.fmean(runs_) * 1000,  # started → finished (the engine's part)
        "start_ms": (created[steps[0]["run_id"]] - ts(run["created_at"])) * 1000,  # workflow → first step
        "end_ms": (ts(run["finished_at"]) - ts(steps[-1]["finished_at"])) * 1000,  # last step → workflow done
        "server_total_ms": (ts(run["finished_at"]) - ts(run["created_at"])) * 1000,
    }


def median_of(timelines: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(t[k] for t in timelines), 3) for k in timelines[0]}


def single_breakdown(client: LeanClient, tool: str, n: int) -> dict[str, float]:
    """The same split for the last ``n`` top-level runs of ``tool`` (the baseline's runs)."""
    status, page = client.request("GET", f"/api/v1/runs?tool={tool}&limit={n}")
    assert status == 200, page
    rows = [r for r in page["items"] if r.get("parent_run_id") is None and r["finished_at"]]
    return {
        "dispatch_ms": round(statistics.median(ts(r["started_at"]) - ts(r["created_at"]) for r in rows) * 1000, 3),
        "step_run_ms": round(statistics.median(ts(r["finished_at"]) - ts(r["started_at"]) for r in rows) * 1000, 3),
        "server_total_ms": round(statistics.median(ts(r["finished_at"]) - ts(r["created_at"]) for r in rows)
                                 * 1000, 3),
    }


def sequential(server: BenchServer, client: LeanClient, name: str, repeats: int, steps: int,
               inputs: dict[str, Any], expect: Any) -> dict[str, Any]:
    """``repeats`` runs of a sequential workflow one after the other: wall time p50/p90, the
    timeline (medians over the runs) and the server's CPU per step."""
    walls, timelines = [], []
    cpu0 = server.cpu_seconds()
    for _ in range(repeats):
        elapsed, run = run_workflow(client, name, inputs)
        assert run["output"] == {"last": expect}, run["output"]
        walls.append(elapsed * 1000)
        timelines.append(timeline(client, run))
    cpu1 = server.cpu_seconds()
    return {"runs": repeats, "steps": steps, "p50_ms": round(percentile(walls, 50), 3),
            "p90_ms": round(percentile(walls, 90), 3), "timeline_ms": median_of(timelines),
            "cpu_ms_per_step": {k: round((cpu1[k] - cpu0[k]) * 1000 / (repeats * steps), 3) for k in cpu0}}


def fanout_throughput(client: LeanClient, name: str, repeats: int) -> dict[str, Any]:
    rates = []
    for _ in range(repeats):
        elapsed, run = run_workflow(client, name, {"items": list(range(FANOUT_ITEMS))})
        assert run["output"] == {"n": FANOUT_ITEMS}, run["output"]
        rates.append(FANOUT_ITEMS / elapsed)
    return {"runs": repeats, "items": FANOUT_ITEMS, "items_per_s_p50": round(statistics.median(rates), 1),
            "items_per_s_all": [round(r, 1) for r in rates]}


def main_server(database_url: str | None, quick: bool) -> dict[str, Any]:
    server = BenchServer(database_url, slots=8)
    client = LeanClient(server.base_url, server.headers())
    try:
        deploy(client, "step", STEP)
        deploy(client, "noop-async", NOOP)
        save_workflow(client, chain("seq10", "step", SEQUENTIAL_STEPS, pass_output=True, inputs={}))
        save_workflow(client, fanout("fan100", "step", FANOUT_ITEMS))
        for _ in range(20):  # warm-up: lays out the code, fills the spares
            client.request("POST", "/api/v1/runs?wait=30", {"tool": "step", "inputs": {"x": 1}})
        client.request("POST", "/api/v1/runs?wait=30", {"tool": "noop-async"})
        run_workflow(client, "seq10", {"x": 0})
        run_workflow(client, "fan100", {"items": list(range(FANOUT_ITEMS))})

        n_single = 50 if quick else 300
        single = sync_latency(server, client, n_single, tool="step", inputs={"x": 1})
        single["timeline_ms"] = single_breakdown(client, "step", n_single)
        seq = sequential(server, client, "seq10", 8 if quick else 40, SEQUENTIAL_STEPS, {"x": 0}, SEQUENTIAL_STEPS)
        repeats = 3 if quick else 7
        fan = fanout_throughput(client, "fan100", repeats)
        # The same 100 no-op runs without a workflow: created at once, then waited for.
        async_runs = [async_throughput(server, client, FANOUT_ITEMS, tool="noop-async", poll_s=0.01)
                      for _ in range(repeats)]
        async_rate = statistics.median(a["runs_per_s"] for a in async_runs)
    finally:
        client.close()
        server.close()

    single_ms = single["p50_ms"]
    seq_ms = seq["p50_ms"]
    goal_ms = SEQUENTIAL_STEPS * single_ms + 20
    return {
        "worker_slots": 8,
        "single_noop_latency_ms": {"p50": single_ms, "p90": single["p90_ms"], "runs": n_single,
                                   "timeline_ms": single["timeline_ms"], "cpu_per_run": single["cpu_per_run"]},
        "sequential_10_ms": seq_ms,
        "sequential_10": {
            **seq, "goal_ms": round(goal_ms, 3), "meets_goal": seq_ms <= goal_ms,
            "overhead_per_step_ms": round((seq_ms - SEQUENTIAL_STEPS * single_ms) / SEQUENTIAL_STEPS, 3),
            "step_gap_ms": seq["timeline_ms"]["step_gap_ms"],
        },
        "fanout_100_runs_per_s": fan["items_per_s_p50"],
        "fanout_100": {
            **fan,
            "async_noop_100_runs_per_s": async_rate,
            "async_noop_100_runs_per_s_all": [a["runs_per_s"] for a in async_runs],
            "fanout_over_async": round(fan["items_per_s_p50"] / async_rate, 3),
        },
    }


def fib_server(database_url: str | None, quick: bool) -> dict[str, Any]:
    """40 sequential fib(10) steps on a server with one worker slot."""
    server = BenchServer(database_url, slots=1)
    client = LeanClient(server.base_url, server.headers())
    try:
        deploy(client, "fib", FIB)
        deploy(client, "fib-reused", FIB, reuse_process=True)
        for tool in ("fib", "fib-reused"):
            save_workflow(client, chain(f"{tool}40", tool, FIB_STEPS, pass_output=False, inputs={"n": 10}))
            for _ in range(5):
                client.request("POST", "/api/v1/runs?wait=30", {"tool": tool, "inputs": {"n": 10}})
            run_workflow(client, f"{tool}40", {})  # warm-up
        repeats = 3 if quick else 5
        out: dict[str, Any] = {"worker_slots": 1}
        for tool, key in (("fib", "fresh_process"), ("fib-reused", "reuse_process")):
            result = sequential(server, client, f"{tool}40", repeats, FIB_STEPS, {}, 55)
            out[key] = {"workflow_s_p50": round(result["p50_ms"] / 1000, 3), "workflow": result,
                        "runs_via_api_40_s": fib_sequential(client, FIB_STEPS, tool=tool)["total_s"]}
    finally:
        client.close()
        server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite in a temporary dir)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a before/after check")
    args = parser.parse_args()
    started = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "workflows", "machine": machine(),
                              "database": "postgresql" if args.database_url else "sqlite"}
    report.update(main_server(args.database_url, args.quick))
    fib = fib_server(args.database_url, args.quick)
    report["fib10_40_sequential_steps_s"] = fib["fresh_process"]["workflow_s_p50"]
    report["fib10_40"] = fib
    report["published_40_fib10_s"] = {
        **PUBLISHED_40_FIB10_S,
        "note": "Windmill's published benchmark: one worker on an AWS m4.large (2 vCPUs), another machine and "
                "another day; only the order of magnitude compares. runyard's figures above are from this "
                "machine, one worker slot.",
    }
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Processes reused across runs of one tool version (``reuse_process``): what carries over
(module state, imports) and what never does (environment, cwd, dirs, limits, leftovers)."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import pytest

from runyard.engine.executor import ExecRequest, ExecResult, Executor, Limits
from tests.support.engine import MakeRequest

COUNTER = """
import os, threading, subprocess

calls = 0

def main(fail: bool = False, thread: bool = False, spawn: bool = False, sleep: float = 0, leak: bool = False):
    global calls
    calls += 1
    seen = {"pid": os.getpid(), "calls": calls, "run": os.environ.get("RUNYARD_RUN_ID"), "cwd": os.getcwd(),
            "leak": os.environ.get("LEAK"), "secret": os.environ.get("API_TOKEN")}
    if leak:
        os.environ["LEAK"] = "from an earlier run"
    if thread:
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    if spawn:
        seen["spawned"] = subprocess.Popen(["sleep", "30"]).pid
    if sleep:
        import time
        time.sleep(sleep)
    if fail:
        raise RuntimeError("boom")
    return seen
"""


def _again(req: ExecRequest, n: int, tmp: Path, **changes: object) -> ExecRequest:
    """The same tool version (same source dir) for another run with its own dirs, beside
    the first run's (the dir the worker gives all runs of a reused version)."""
    work = req.workdir.parent / f"again{n}"
    work.mkdir(exist_ok=True)
    fields: dict[str, object] = {"run_id": f"{req.run_id}_{n}", "workdir": work, "output_dir": work / "out"}
    fields.update(changes)
    return dataclasses.replace(req, **fields)  # type: ignore[arg-type]


def _ok(result: ExecResult) -> dict:
    assert result.status == "succeeded", result.error
    return result.output


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_a_reused_process_keeps_module_state_and_nothing_else(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request(COUNTER, inputs={"leak": True}, env={"API_TOKEN": "one"})
    first.reuse_process = True
    seen = [_ok(executor.submit(first).wait(20))]
    for n in (1, 2):
        req = _again(first, n, tmp_path, inputs={}, env={"API_TOKEN": f"rotated{n}"})
        seen.append(_ok(executor.submit(req).wait(20)))
        assert seen[-1]["cwd"] == str(req.workdir)
        assert seen[-1]["run"] == req.run_id
    assert len({s["pid"] for s in seen}) == 1
    assert [s["calls"] for s in seen] == [1, 2, 3]
    # The environment is each run's own: neither what an earlier run set nor its secrets.
    assert [s["leak"] for s in seen] == [None, None, None]
    assert [s["secret"] for s in seen] == ["one", "rotated1", "rotated2"]


def test_without_reuse_every_run_has_a_fresh_process(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request(COUNTER)
    seen = [_ok(executor.submit(_again(first, n, tmp_path)).wait(20)) for n in range(3)]
    assert len({s["pid"] for s in seen}) == 3
    assert [s["calls"] for s in seen] == [1, 1, 1]


@pytest.mark.parametrize("leftover", ["fail", "thread", "spawn"])
def test_a_process_retires_after_a_failure_or_when_a_run_leaves_something_running(
    executor: Executor, make_request: MakeRequest, tmp_path: Path, leftover: str
) -> None:
    first = make_request(COUNTER)
    first.reuse_process = True
    pid = _ok(executor.submit(first).wait(20))["pid"]
    result = executor.submit(_again(first, 1, tmp_path, inputs={leftover: True})).wait(20)
    assert (result.status == "failed") == (leftover == "fail")
    assert result.exit_code == (1 if leftover == "fail" else 0)
    after = _ok(executor.submit(_again(first, 2, tmp_path, inputs={})).wait(20))
    assert after["pid"] != pid and after["calls"] == 1
    assert _gone(pid)
    if leftover == "spawn":
        assert _gone(result.output["spawned"])  # the retired process's group went with it


def test_a_pending_timer_or_hoarded_files_retire_the_process(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request("""
        import os, signal, sys
        kept = []

        def main(alarm: bool = False, files: int = 0, swap: bool = False):
            if alarm:
                signal.alarm(30)
            kept.extend(open(os.devnull) for _ in range(files))
            if swap:
                sys.stdout = open(os.devnull, "w")
            print("said")
            return os.getpid()
    """, limits=Limits(timeout_s=20, max_open_files=64))
    first.reuse_process = True
    pid = _ok(executor.submit(first).wait(20))
    # A run that swapped sys.stdout does not take the next run's output with it.
    assert executor.submit(_again(first, 1, tmp_path, inputs={"swap": True})).wait(20).output == pid
    said: list[bytes] = []
    assert executor.submit(_again(first, 2, tmp_path, inputs={}), on_output=said.append).wait(20).output == pid
    assert b"said" in b"".join(said)
    assert executor.submit(_again(first, 3, tmp_path, inputs={"alarm": True})).wait(20).output == pid
    after_alarm = executor.submit(_again(first, 4, tmp_path, inputs={})).wait(20).output
    assert after_alarm != pid
    assert executor.submit(_again(first, 5, tmp_path, inputs={"files": 10})).wait(20).output == after_alarm
    assert executor.submit(_again(first, 6, tmp_path, inputs={"files": 30})).wait(20).output == after_alarm
    assert executor.submit(_again(first, 7, tmp_path, inputs={})).wait(20).output != after_alarm


def test_a_daemonised_grandchild_keeps_the_process_from_being_reused(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request("""
        import os, subprocess
        def main(escape: bool = False):
            if escape:  # the classic double fork: the grandchild is orphaned at once
                subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 &"], check=True)
            return os.getpid()
    """)
    first.reuse_process = True
    pid = _ok(executor.submit(first).wait(20))
    assert executor.submit(_again(first, 1, tmp_path)).wait(20).output == pid
    assert executor.submit(_again(first, 2, tmp_path, inputs={"escape": True})).wait(20).status == "succeeded"
    assert executor.submit(_again(first, 3, tmp_path, inputs={})).wait(20).output != pid


def test_each_run_reports_its_own_usage(executor: Executor, make_request: MakeRequest, tmp_path: Path) -> None:
    first = make_request("""
        import os, time
        def main(burn: float = 0, mb: int = 0):
            block = bytearray(mb * 1024 * 1024)
            end = time.process_time() + burn
            while time.process_time() < end:
                pass
            return os.getpid()
    """, inputs={"burn": 0.3, "mb": 150}, limits=Limits(timeout_s=20, memory_mb=1024))
    first.reuse_process = True
    heavy = executor.submit(first).wait(20)
    light = executor.submit(_again(first, 1, tmp_path, inputs={})).wait(20)
    assert heavy.output == light.output
    assert heavy.usage["cpu_s"] >= 0.3 and light.usage["cpu_s"] < 0.2
    assert heavy.usage["peak_rss_mb"] >= 150 and light.usage["peak_rss_mb"] < 100


def test_a_reused_process_is_cancelled_like_any_other(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request(COUNTER)
    first.reuse_process = True
    pid = _ok(executor.submit(first).wait(20))["pid"]
    execution = executor.submit(_again(first, 1, tmp_path, inputs={"sleep": 60}))
    deadline = time.monotonic() + 5
    while execution.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert execution.pid == pid
    time.sleep(0.2)
    started = time.monotonic()
    execution.cancel()
    assert execution.wait(5).status == "cancelled"
    assert time.monotonic() - started < 1.0
    assert _gone(pid)
    assert _ok(executor.submit(_again(first, 2, tmp_path, inputs={})).wait(20))["calls"] == 1


def test_a_reused_process_times_out_and_its_cpu_limit_is_per_run(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request("""
        import os, time
        def main(burn: float = 0, sleep: float = 0):
            end = time.process_time() + burn
            while time.process_time() < end:
                pass
            time.sleep(sleep)
            return os.getpid()
    """, inputs={"burn": 0.8}, limits=Limits(timeout_s=20, cpu_s=1))
    first.reuse_process = True
    pid = _ok(executor.submit(first).wait(20))
    # 0.8 s again: over the process's lifetime that is past 1 s, within this run's budget.
    assert _ok(executor.submit(_again(first, 1, tmp_path)).wait(20)) == pid
    over = executor.submit(_again(first, 2, tmp_path, inputs={"burn": 5})).wait(20)
    assert over.status == "failed" and over.error is not None
    assert over.error["type"] == "cpu_limit_exceeded"
    slow = executor.submit(_again(first, 3, tmp_path, inputs={"sleep": 30}, limits=Limits(timeout_s=0.5, cpu_s=1)))
    assert slow.wait(10).status == "timed_out"


def test_versions_and_limits_never_share_a_process(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    one, two = make_request(COUNTER), make_request(COUNTER)
    one.reuse_process = two.reuse_process = True
    pids = {_ok(executor.submit(req).wait(20))["pid"] for req in (one, two)}
    bigger = _again(one, 1, tmp_path, limits=Limits(timeout_s=20, memory_mb=2048))
    pids.add(_ok(executor.submit(bigger).wait(20))["pid"])
    assert len(pids) == 3
    assert _ok(executor.submit(_again(one, 2, tmp_path)).wait(20))["calls"] == 2


def test_idle_and_surplus_processes_retire(tmp_path: Path, make_request: MakeRequest) -> None:
    with Executor(tmp_path / "data", uv_offline=True, reuse_limit=1) as executor:
        one, two = make_request(COUNTER), make_request(COUNTER)
        one.reuse_process = two.reuse_process = True
        first = _ok(executor.submit(one).wait(20))["pid"]
        second = _ok(executor.submit(two).wait(20))["pid"]
        assert _gone(first)  # over the limit: the least recently used retired
        server = executor._ensure_server()
        assert len(server.reusable) == 1
        server.reusable.idle_s = 0.0
        server.reusable.retire_idle()
        assert _gone(second) and len(server.reusable) == 0
        assert _ok(executor.submit(_again(two, 1, tmp_path)).wait(20))["calls"] == 1


def test_a_tool_interpreter_process_is_reused_too(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request(COUNTER, python=sys.executable)
    first.reuse_process = True
    seen = [_ok(executor.submit(first).wait(20))]
    seen += [_ok(executor.submit(_again(first, n, tmp_path)).wait(20)) for n in (1, 2)]
    assert len({s["pid"] for s in seen}) == 1 and [s["calls"] for s in seen] == [1, 2, 3]


def test_runs_in_flight_together_share_as_many_processes(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    first = make_request(COUNTER)
    first.reuse_process = True
    in_flight, seen = [], []
    for n in range(60):  # four at a time, as a worker with four slots
        in_flight.append(executor.submit(_again(first, n, tmp_path)))
        if len(in_flight) == 4:
            seen.append(_ok(in_flight.pop(0).wait(30)))
    seen += [_ok(e.wait(30)) for e in in_flight]
    assert len({s["run"] for s in seen}) == 60
    assert len({s["pid"] for s in seen}) <= 8
    deadline = time.monotonic() + 5
    while any(os.path.exists(s["cwd"]) for s in seen) and time.monotonic() < deadline:
        time.sleep(0.02)  # the dirs go right after each result is out
    assert not any(os.path.exists(s["cwd"]) for s in seen)

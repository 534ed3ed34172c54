"""Retries: what ``retries`` covers (``retry_on``), backoff, and a retry surviving the
death of the fork server running the attempt."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from runyard.services.runs import retry_cause, retry_delay_s
from tests.support.api import TERMINAL, deploy, error_code, run, wait_status
from tests.support.servers import Server


def _fork_servers(parent_pid: int) -> list[int]:
    """The fork servers a server process started (its children running the fork server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent_pid and b"forkserver" in cmdline:
            found.append(int(entry.name))
    return found


def _wait_log(api: httpx.Client, run_id: str, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while needle not in (text := api.get(f"/runs/{run_id}/logs").text):
        assert time.monotonic() < deadline, text
        time.sleep(0.05)
    return text


@pytest.mark.slow
def test_retry_survives_the_death_of_the_fork_server(fresh_server: Server) -> None:
    srv = fresh_server.start()
    assert srv.proc is not None
    with srv.client() as api:
        deploy(api, "forklost", """
            import os, time
            def main():
                attempt = os.environ["RUNYARD_ATTEMPT"]
                print(f"attempt={attempt}", flush=True)
                if attempt == "1":
                    time.sleep(120)
                return attempt
            """, retries=1)
        created = run(api, "forklost", wait=0)
        _wait_log(api, created["id"], "attempt=1")
        servers = _fork_servers(srv.proc.pid)
        assert servers, "no fork server found"
        for pid in servers:
            os.kill(pid, signal.SIGKILL)
        ended = wait_status(api, created["id"], TERMINAL, timeout=30)
        # Retried at once by the worker (not 16 s later as worker_lost by the reaper).
        assert ended["status"] == "succeeded", ended
        assert (ended["attempt"], ended["output"]) == (2, "2")
        log = api.get(f"/runs/{created['id']}/logs").text
        assert "attempt 2 of 2" in log and "attempt=2" in log
        # Its dirs are gone, and the engine serves later runs from a new fork server.
        assert not (srv.data_dir / "work" / created["id"]).exists()
        assert not (srv.data_dir / "work" / f"{created['id']}.out").exists()
        deploy(api, "forklost-after", "def main():\n    return 'fine'\n")
        assert run(api, "forklost-after", wait=30)["output"] == "fine"


def test_retry_on_error_with_exponential_backoff(api: httpx.Client, unique: str) -> None:
    name = f"flaky-{unique}"
    tool = deploy(api, name, """
        import os, time
        def main():
            attempt = int(os.environ["RUNYARD_ATTEMPT"])
            print(f"attempt={attempt} t={time.time()}", flush=True)
            if attempt < 3:
                raise RuntimeError(f"flaked on attempt {attempt}")
            return attempt
        """, retries=2, retry_on=["error"], retry_backoff_s=0.4)
    assert (tool["retry_on"], tool["retry_backoff_s"]) == (["error"], 0.4)
    created = run(api, name, wait=0)
    ended = wait_status(api, created["id"], TERMINAL, timeout=30)
    assert ended["status"] == "succeeded", ended
    assert (ended["attempt"], ended["output"]) == (3, 3)
    log = api.get(f"/runs/{created['id']}/logs").text
    times = {int(a): float(t) for a, t in re.findall(r"attempt=(\d) t=([\d.]+)", log)}
    assert sorted(times) == [1, 2, 3], log
    # Attempt n+1 waits retry_backoff_s * 2**(n-1) after attempt n failed (and printed before).
    assert times[2] - times[1] >= 0.4, times
    assert times[3] - times[2] >= 0.8, times


def test_retries_cover_only_a_lost_worker_by_default(api: httpx.Client, unique: str) -> None:
    name = f"fails-{unique}"
    tool = deploy(api, name, "def main():\n    raise ValueError('no')\n", retries=2)
    assert (tool["retry_on"], tool["retry_backoff_s"]) == (["worker_lost"], 0.0)
    ended = run(api, name, wait=30)
    assert ended["status"] == "failed" and ended["error"]["type"] == "ValueError", ended
    assert ended["attempt"] == 1


def test_retry_on_timeout(api: httpx.Client, unique: str) -> None:
    name = f"slow-once-{unique}"
    deploy(api, name, """
        import os, time
        def main():
            if os.environ["RUNYARD_ATTEMPT"] == "1":
                time.sleep(30)
            return "in time"
        """, retries=1, retry_on=["timeout"], timeout_s=1)
    ended = wait_status(api, run(api, name, wait=0)["id"], TERMINAL, timeout=30)
    assert ended["status"] == "succeeded", ended
    assert (ended["attempt"], ended["output"]) == (2, "in time")


def test_a_timeout_is_not_retried_unless_the_tool_says_so(api: httpx.Client, unique: str) -> None:
    name = f"slow-{unique}"
    deploy(api, name, "import time\ndef main():\n    time.sleep(30)\n", retries=1, retry_on=["error"], timeout_s=0.5)
    ended = wait_status(api, run(api, name, wait=0)["id"], TERMINAL, timeout=30)
    assert (ended["status"], ended["attempt"]) == ("timed_out", 1), ended


def test_retry_policy_is_validated_and_versioned(api: httpx.Client, unique: str) -> None:
    name = f"policy-{unique}"
    for bad in ({"retry_on": ["sometimes"]}, {"retry_on": "error"}, {"retry_backoff_s": -1},
                {"retry_backoff_s": 4000}, {"retry_backoff_s": True}):
        response = api.post("/tools", json={"name": name, "code": "def main():\n    return 1\n", **bad})
        assert response.status_code == 400, (bad, response.text)
        assert error_code(response) == "validation_error"
        assert response.json()["error"]["details"]["field"] == next(iter(bad))
    deploy(api, name, "def main():\n    return 1\n", retry_on=["timeout", "error", "error"])
    tool = api.get(f"/tools/{name}").json()
    assert (tool["version"], tool["retry_on"]) == (1, ["error", "timeout"])  # one order, no repeats
    updated = api.patch(f"/tools/{name}", json={"retry_backoff_s": 2}).json()
    assert (updated["version"], updated["retry_on"], updated["retry_backoff_s"]) == (2, ["error", "timeout"], 2.0)
    assert api.get(f"/tools/{name}/versions/1").json()["retry_backoff_s"] == 0.0


def test_retry_causes_and_delays() -> None:
    assert retry_cause("failed", {"type": "ValueError"}) == "error"
    assert retry_cause("failed", {"type": "process_crashed"}) == "error"
    for lost in ("worker_lost", "worker_shutdown", "executor_error"):
        assert retry_cause("failed", {"type": lost}) == "worker_lost"
    assert retry_cause("timed_out", {"type": "timeout"}) == "timeout"
    assert retry_cause("failed", {"type": "cancelled"}) is None
    assert retry_cause("cancelled", {"type": "cancelled"}) is None
    assert retry_cause("succeeded", None) is None
    assert [retry_delay_s(1.5, n) for n in (1, 2, 3)] == [1.5, 3.0, 6.0]
    assert retry_delay_s(0, 5) == 0.0
    assert retry_delay_s(3000, 4) == 3600.0  # capped

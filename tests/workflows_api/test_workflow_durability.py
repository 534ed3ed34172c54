"""Workflow runs survive their nodes: a worker killed mid-step, or the whole server killed
and restarted, and the run goes on from its completed steps (a step that succeeded never
runs again; the lost one is retried under the step's retries)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.core.test_reliability import FAST_LEASE, start_api_node, start_worker
from tests.support.api import deploy, wait_status
from tests.support.servers import Server

pytestmark = pytest.mark.slow  # each waits out a lease after a kill

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
# The attempt number, not a marker file: a sandboxed run can write only its own dirs.
FLAKY = """
import os, time
def main(x: int = 0):
    if os.environ["RUNYARD_ATTEMPT"] == "1":
        time.sleep(120)
    return x + 100
"""
FLOW = """
name: durable
steps:
  - id: first
    uses: quick
    with: {x: 1}
  - id: second
    uses: flaky
    needs: first
    retries: 1
    retry_backoff_s: 0.1
    with: {x: "${{ steps.first.output }}"}
  - id: third
    uses: quick
    needs: second
    with: {x: "${{ steps.second.output }}"}
outputs:
  result: ${{ steps.third.output }}
"""


def _start_and_reach_second(api: httpx.Client) -> tuple[str, str]:
    deploy(api, "quick", "def main(x: int = 0):\n    return x + 1\n")
    deploy(api, "flaky", FLAKY)
    saved = api.post("/workflows", content=FLOW, headers={"content-type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    run = api.post("/runs", json={"workflow": "durable"}).json()
    deadline = time.monotonic() + 30
    while True:
        steps = {k["step_id"]: k for k in api.get("/runs", params={"parent_run_id": run["id"]}).json()["items"]}
        if steps.get("second", {}).get("status") == "running":
            return run["id"], steps["first"]["id"]
        assert time.monotonic() < deadline, steps
        time.sleep(0.1)


def _check_resumed(api: httpx.Client, run_id: str, first_id: str) -> None:
    done = wait_status(api, run_id, TERMINAL, timeout=90)
    assert done["status"] == "succeeded", done
    assert done["output"] == {"result": 103}
    steps = api.get("/runs", params={"parent_run_id": run_id}).json()["items"]
    by_step = {s["step_id"]: s for s in steps}
    assert len(steps) == 3, steps  # one run per step: none started twice
    assert by_step["first"]["id"] == first_id and by_step["first"]["attempt"] == 1
    assert by_step["second"]["attempt"] == 2 and by_step["second"]["status"] == "succeeded"


def test_a_workflow_goes_on_after_its_worker_is_killed(fresh_server: Server) -> None:
    api_node = start_api_node(fresh_server)
    worker = start_worker(api_node, slots=2)
    try:
        with api_node.client() as api:
            run_id, first_id = _start_and_reach_second(api)
            worker.kill9()
            replacement = start_worker(api_node, slots=2)
            try:
                _check_resumed(api, run_id, first_id)
            finally:
                replacement.stop()
    finally:
        worker.stop()


def test_a_workflow_goes_on_after_the_server_restarts(fresh_server: Server) -> None:
    srv = fresh_server
    srv.extra_env = dict(FAST_LEASE)
    srv.start()
    with srv.client() as api:
        run_id, first_id = _start_and_reach_second(api)
    srv.kill9()
    srv.start()
    with srv.client() as api:
        _check_resumed(api, run_id, first_id)

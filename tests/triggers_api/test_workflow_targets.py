"""Schedules and webhooks whose target is a workflow: they start workflow runs as their
user, and a schedule whose workflow is deleted disables itself with the reason."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.api import deploy, error_code

TOOL = "def main(n: int = 0):\n    return n + 1\n"


def _flow(api: httpx.Client, name: str, tool: str) -> None:
    response = api.post("/workflows", json={"definition": {
        "name": name, "inputs": {"type": "object", "properties": {"n": {"type": "integer", "default": 0}}},
        "steps": [{"id": "inc", "uses": tool, "with": {"n": "${{ inputs.n }}"}}],
        "outputs": {"n": "${{ steps.inc.output }}"}}})
    assert response.status_code == 201, response.text


def _workflow_runs(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    return api.get("/runs", params={"source": name, "type": "workflow", "limit": 1000}).json()["items"]


def test_a_schedule_runs_a_workflow_and_stops_when_it_is_gone(api: httpx.Client, unique: str) -> None:
    tool, flow = f"wt-{unique}", f"wt-flow-{unique}"
    deploy(api, tool, TOOL)
    _flow(api, flow, tool)
    bad = api.post("/schedules", json={"workflow": flow, "interval_s": 1, "inputs": {"n": "x"}})
    assert bad.status_code == 400 and error_code(bad) == "invalid_inputs", bad.text
    created = api.post("/schedules", json={"workflow": flow, "interval_s": 1, "inputs": {"n": 41}})
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["workflow"] == flow and schedule["target_kind"] == "workflow"
    deadline = time.monotonic() + 20
    while not (runs := [r for r in _workflow_runs(api, flow) if r["status"] == "succeeded"]):
        assert time.monotonic() < deadline, "no workflow run from the schedule"
        time.sleep(0.2)
    assert runs[0]["output"] == {"n": 42} and runs[0]["trigger"] == "schedule"
    assert runs[0]["triggered_by"] == schedule["id"]
    assert api.delete(f"/workflows/{flow}").status_code == 204
    while api.get(f"/schedules/{schedule['id']}").json()["enabled"]:
        assert time.monotonic() < deadline + 20, "the schedule did not disable itself"
        time.sleep(0.2)
    reason = api.get(f"/schedules/{schedule['id']}").json()["disabled_reason"]
    assert flow in reason and "no longer exists" in reason


def test_a_webhook_starts_a_workflow(api: httpx.Client, unique: str) -> None:
    tool, flow = f"wh-{unique}", f"wh-flow-{unique}"
    deploy(api, tool, TOOL)
    _flow(api, flow, tool)
    hook = api.post("/webhooks", json={"workflow": flow})
    assert hook.status_code == 201, hook.text
    delivered = httpx.post(hook.json()["url"], json={"n": 9}, params={"wait": 30}, timeout=60)
    assert delivered.status_code in (200, 201), delivered.text
    run = delivered.json()["run"]
    assert run["type"] == "workflow" and run["status"] == "succeeded" and run["output"] == {"n": 10}, run
    assert run["trigger"] == "webhook" and run["triggered_by"] == hook.json()["id"]
    switched = api.patch(f"/webhooks/{hook.json()['id']}", json={"tool": tool})
    assert switched.status_code == 200 and switched.json()["tool"] == tool and switched.json()["workflow"] is None

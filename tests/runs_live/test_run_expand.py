"""GET /runs/{id}?expand=inputs,usage,execution,debug on a real server: the worker, attempts,
environment and timings a run executed with, the sandbox and limits it ran under, and who
may see which protections the node enforces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.support.api import deploy, error_code

FLAKY = """
import os
def main(x: int = 1):
    if os.environ["RUNYARD_ATTEMPT"] == "1":
        raise RuntimeError("first attempt fails")
    return x
"""


def _get(client: httpx.Client, run_id: str, expand: str) -> dict[str, Any]:
    response = client.get(f"/runs/{run_id}", params={"expand": expand})
    assert response.status_code == 200, response.text
    return response.json()


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_execution_and_debug_say_where_and_how_a_run_ran(api: httpx.Client, server: Any, unique: str) -> None:
    tool = f"expand-{unique}"
    deploy(api, tool, "def main(x: int = 1):\n    return x\n", timeout_s=42, memory_mb=384, network=False)
    run = api.post("/runs", params={"wait": 30}, json={"tool": tool, "inputs": {"x": 3}}).json()
    assert run["status"] == "succeeded", run
    plain = api.get(f"/runs/{run['id']}").json()
    assert "execution" not in plain and "debug" not in plain and "inputs" not in plain
    full = _get(api, run["id"], "inputs,usage,execution,debug")
    assert full["inputs"] == {"x": 3} and full["usage"]["wall_ms"] is not None
    execution = full["execution"]
    assert execution["worker"]["id"] == run["worker_id"] and execution["worker"]["host"]
    assert execution["attempt"] == 1 and execution["max_attempts"] == 1
    assert [a["attempt"] for a in execution["attempts"]] == [1]
    assert execution["attempts"][0]["worker_id"] == run["worker_id"]
    assert execution["environment"]["python"].startswith("shared") and execution["environment"]["requirements"] == []
    timings = execution["timings"]
    assert timings["queue_wait_ms"] is not None and timings["queue_wait_ms"] >= 0
    assert timings["duration_ms"] is not None and timings["duration_ms"] >= 0
    assert timings["duration_ms"] == round(
        (_ts(timings["finished_at"]) - _ts(timings["started_at"])).total_seconds() * 1000, 3)
    debug = full["debug"]
    assert debug["recorded"] is True and debug["attempt"] == 1
    assert debug["limits"]["timeout_s"] == 42 and debug["limits"]["memory_mb"] == 384
    assert debug["limits"]["cpu_s"] >= 42 and debug["limits"]["max_open_files"] > 0
    assert debug["network"] is False
    assert debug["sandbox"]["mode"] in ("on", "strict", "off")
    # Which protections the node enforces: an unrestricted admin key's to see, no one else's.
    assert isinstance(debug["sandbox"]["protections"], dict)
    member = api.post("/tokens", json={"name": f"expand-m-{unique}", "role": "member"}).json()["key"]
    with server.client(member) as as_member:
        seen = _get(as_member, run["id"], "debug")["debug"]
    assert "protections" not in seen["sandbox"] and seen["limits"] == debug["limits"]
    # Only what was asked for.
    only = _get(api, run["id"], "execution")
    assert "debug" not in only and "inputs" not in only


def test_each_attempt_is_recorded(api: httpx.Client, unique: str) -> None:
    tool = f"expand-retry-{unique}"
    deploy(api, tool, FLAKY, retries=1, retry_on=["error"])
    run = api.post("/runs", params={"wait": 30}, json={"tool": tool}).json()
    assert run["status"] == "succeeded" and run["attempt"] == 2, run
    execution = _get(api, run["id"], "execution")["execution"]
    assert [a["attempt"] for a in execution["attempts"]] == [1, 2]
    assert execution["attempt"] == 2 and execution["max_attempts"] == 2


def test_a_run_that_never_started_has_no_record(api: httpx.Client, unique: str) -> None:
    tool = f"expand-wait-{unique}"
    deploy(api, tool, "def main(x: int = 1):\n    return x\n")
    run = api.post("/runs", json={"tool": tool, "requires_confirmation": True}).json()
    body = _get(api, run["id"], "execution,debug")
    assert body["execution"]["worker"] is None and body["execution"]["attempts"] == []
    assert body["execution"]["timings"]["started_at"] is None and body["execution"]["timings"]["duration_ms"] is None
    assert body["debug"]["recorded"] is False and body["debug"]["limits"] is None


def test_unknown_expand_values_are_refused(api: httpx.Client, unique: str) -> None:
    tool = f"expand-bad-{unique}"
    deploy(api, tool, "def main():\n    return 1\n")
    run = api.post("/runs", params={"wait": 30}, json={"tool": tool}).json()
    for bad in ("secrets", "inputs,secrets", "debug,../x"):
        response = api.get(f"/runs/{run['id']}", params={"expand": bad})
        assert response.status_code == 400, response.text
        assert error_code(response) == "validation_error"
        assert response.json()["error"]["details"]["allowed"] == ["inputs", "usage", "execution", "debug"]
    # Spaces and empty parts are forgiven.
    assert "debug" in _get(api, run["id"], " debug, ,execution")
    hidden = api.get("/runs/run_00000000000000000000000000", params={"expand": "debug"})
    assert hidden.status_code == 404 and error_code(hidden) == "run_not_found"

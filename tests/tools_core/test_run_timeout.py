"""A run may carry its own timeout, at most its tool version's; the worker enforces it."""

from __future__ import annotations

import time

import httpx

from tests.support.api import deploy, error_code, run

SLOW = "import time\ndef main(seconds: float = 30):\n    time.sleep(seconds)\n    return 'woke'\n"


def test_a_run_times_out_at_its_own_timeout(api: httpx.Client, unique: str) -> None:
    name = f"own-timeout-{unique}"
    deploy(api, name, SLOW, timeout_s=60)
    started = time.monotonic()
    done = run(api, name, {"seconds": 30}, wait=40, timeout_s=1)
    assert done["status"] == "timed_out", done
    assert time.monotonic() - started < 25
    assert done["timeout_s"] == 1 and "1 s" in done["error"]["message"], done
    assert api.get(f"/runs/{done['id']}").json()["timeout_s"] == 1
    quick = run(api, name, {"seconds": 0}, timeout_s=20)
    assert quick["status"] == "succeeded" and quick["timeout_s"] == 20, quick
    assert run(api, name, {"seconds": 0})["timeout_s"] is None  # no timeout of its own: the version's


def test_a_run_timeout_above_the_tools_is_refused(api: httpx.Client, unique: str) -> None:
    name = f"cap-timeout-{unique}"
    deploy(api, name, SLOW, timeout_s=5)
    refused = api.post("/runs", json={"tool": name, "timeout_s": 5.5})
    assert refused.status_code == 400 and error_code(refused) == "timeout_too_large", refused.text
    assert refused.json()["error"]["details"]["max"] == 5
    for bad in (0, -1, 86401, "10", True):
        response = api.post("/runs", json={"tool": name, "timeout_s": bad})
        assert response.status_code == 400, (bad, response.text)
    assert api.get("/runs", params={"tool": name}).json()["items"] == []
    # a workflow's steps declare their own timeouts
    workflow = api.post("/runs", json={"workflow": "anything", "timeout_s": 1})
    assert workflow.status_code == 400, workflow.text


def test_idempotent_replays_take_the_timeout_into_account(api: httpx.Client, unique: str) -> None:
    name = f"idem-timeout-{unique}"
    deploy(api, name, SLOW, timeout_s=60)
    key = {"Idempotency-Key": f"k-{unique}"}
    first = api.post("/runs", headers=key, json={"tool": name, "inputs": {"seconds": 0}, "timeout_s": 10})
    assert first.status_code == 201, first.text
    again = api.post("/runs", headers=key, json={"tool": name, "inputs": {"seconds": 0}, "timeout_s": 10})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
    other = api.post("/runs", headers=key, json={"tool": name, "inputs": {"seconds": 0}, "timeout_s": 11})
    assert other.status_code == 409 and error_code(other) == "idempotency_key_reused", other.text


def test_batch_items_carry_their_own_timeouts(api: httpx.Client, unique: str) -> None:
    name = f"batch-timeout-{unique}"
    deploy(api, name, SLOW, timeout_s=5)
    answered = api.post("/runs/batch", json={"runs": [
        {"tool": name, "inputs": {"seconds": 0}, "timeout_s": 2},
        {"tool": name, "inputs": {"seconds": 0}, "timeout_s": 6}]})
    assert answered.status_code == 200, answered.text
    ok, refused = answered.json()["items"]
    assert ok["status"] == 201 and ok["run"]["timeout_s"] == 2, ok
    assert refused["status"] == 400 and refused["error"]["code"] == "timeout_too_large", refused

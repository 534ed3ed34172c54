"""Many runs per request through the real server: POST /runs/batch (each item judged alone,
idempotent per item, hidden tools per item) and POST /runs/wait (one long-poll over many)."""

from __future__ import annotations

import time

from tests.support.api import TERMINAL, deploy, error_code

ECHO = "def main(x: int):\n    return x * 10\n"
SLEEP = "import time\n\ndef main(s: float = 30.0):\n    time.sleep(s)\n    return s\n"


def test_batch_answers_each_item_in_order(api, unique):
    tool = f"becho-{unique}"
    deploy(api, tool, ECHO)
    items = [
        {"tool": tool, "inputs": {"x": 1}, "tags": {"batch_id": f"b-{unique}"}},
        {"tool": tool, "inputs": {"x": "not a number"}},          # invalid inputs
        {"tool": f"no-such-{unique}", "inputs": {"x": 1}},        # unknown tool
        "not an object",
        {"tool": tool, "inputs": {"x": 2}, "colour": "red"},       # unknown field
        {"inputs": {"x": 3}},                                      # no tool
        {"tool": tool, "inputs": {"x": 4}, "tags": {"nope": "x"}},  # unknown tag
        {"tool": tool, "inputs": {"x": 5}, "requires_confirmation": True},
    ]
    r = api.post("/runs/batch", json={"runs": items})
    assert r.status_code == 200, r.text
    out = r.json()["items"]
    assert [i["index"] for i in out] == list(range(len(items)))
    assert [i["status"] for i in out] == [201, 400, 404, 400, 400, 400, 400, 201]
    assert [i.get("error", {}).get("code") for i in out] == [
        None, "invalid_inputs", "tool_not_found", "validation_error", "validation_error", "validation_error",
        "validation_error", None]
    assert out[4]["error"]["details"]["fields"] == ["colour"]
    assert out[0]["run"]["tags"] == {"batch_id": f"b-{unique}"} and out[0]["run"]["tool_name"] == tool
    assert out[7]["run"]["status"] == "awaiting_confirmation"
    # Only the two valid items made runs.
    listed = api.get("/runs", params={"tool": tool, "include_total": True}).json()
    assert listed["total"] == 2
    waited = api.post("/runs/wait", json={"ids": [out[0]["run"]["id"]], "timeout": 30}).json()
    assert waited["items"][0]["output"] == 10 and waited["pending"] == []


def test_batch_is_idempotent_per_item(api, unique):
    tool = f"bidem-{unique}"
    deploy(api, tool, ECHO)
    items = [{"tool": tool, "inputs": {"x": 1}, "idempotency_key": f"own-{unique}"},
             {"tool": tool, "inputs": {"x": 2}}]
    headers = {"Idempotency-Key": f"batch-{unique}"}
    first = api.post("/runs/batch", json={"runs": items}, headers=headers).json()["items"]
    again = api.post("/runs/batch", json={"runs": items}, headers=headers).json()["items"]
    assert [i["status"] for i in first] == [201, 201]
    assert [i["status"] for i in again] == [200, 200]  # replays: nothing created twice
    assert [i["run"]["id"] for i in first] == [i["run"]["id"] for i in again]
    # The item with its own key replays in any batch, at any position; a changed item
    # under a used key is refused alone.
    other = api.post("/runs/batch", json={"runs": [
        {"tool": tool, "inputs": {"x": 3}},
        items[0],
        {"tool": tool, "inputs": {"x": 9}, "idempotency_key": f"own-{unique}"},
    ]}).json()["items"]
    assert [i["status"] for i in other] == [201, 200, 409]
    assert other[1]["run"]["id"] == first[0]["run"]["id"]
    assert other[2]["error"]["code"] == "idempotency_key_reused"
    # Without any key, the same batch twice is two sets of runs.
    plain = [api.post("/runs/batch", json={"runs": items[1:]}).json()["items"][0]["run"]["id"] for _ in range(2)]
    assert plain[0] != plain[1]
    assert api.get("/runs", params={"tool": tool, "include_total": True}).json()["total"] == 5


def test_batch_limits_and_body(api, unique):
    tool = f"blim-{unique}"
    deploy(api, tool, ECHO)
    r = api.post("/runs/batch", json={"runs": [{"tool": tool, "inputs": {"x": 1}}] * 1001})
    assert r.status_code == 413 and error_code(r) == "batch_too_large"
    assert r.json()["error"]["details"] == {"max": 1000, "count": 1001}
    assert api.get("/runs", params={"tool": tool, "include_total": True}).json()["total"] == 0
    assert error_code(api.post("/runs/batch", json={"runs": {"tool": tool}})) == "validation_error"
    assert error_code(api.post("/runs/batch", json={})) == "validation_error"
    assert error_code(api.post("/runs/batch", json={"runs": [], "extra": 1})) == "validation_error"
    assert api.post("/runs/batch", json={"runs": []}).json()["items"] == []
    r = api.post("/runs/wait", json={"ids": ["run_x"] * 1001})
    assert r.status_code == 413 and error_code(r) == "batch_too_large"
    full = api.post("/runs/batch", json={"runs": [{"tool": tool, "inputs": {"x": i}} for i in range(1000)]})
    assert full.status_code == 200 and all(i["status"] == 201 for i in full.json()["items"])
    ids = [i["run"]["id"] for i in full.json()["items"]]
    assert len(set(ids)) == 1000
    done = api.post("/runs/wait", json={"ids": ids, "timeout": 120}, timeout=150).json()
    assert done["pending"] == [] and [r["output"] for r in done["items"]] == [i * 10 for i in range(1000)]


def test_batch_and_wait_for_a_restricted_key(server, api, unique):
    seen, hidden = f"bseen-{unique}", f"bhidden-{unique}"
    deploy(api, seen, ECHO)
    deploy(api, hidden, ECHO)
    hidden_run = api.post("/runs", json={"tool": hidden, "inputs": {"x": 1}}).json()
    token = api.post("/tokens", json={"name": f"br-{unique}", "role": "member",
                                      "restrictions": {"tools": [seen]}}).json()
    viewer = api.post("/tokens", json={"name": f"bv-{unique}", "role": "viewer"}).json()
    with server.client(token["key"]) as r:
        out = r.post("/runs/batch", json={"runs": [{"tool": hidden, "inputs": {"x": 1}},
                                                   {"tool": seen, "inputs": {"x": 2}}]}).json()["items"]
        assert [i["status"] for i in out] == [404, 201]
        # Exactly what POST /runs answers for a tool that does not exist.
        assert out[0]["error"]["code"] == "tool_not_found"
        assert out[0]["error"]["message"] == r.post("/runs", json={"tool": hidden}).json()["error"]["message"]
        # A hidden run is not found, as GET /runs/{id} answers, and so is an unknown one.
        assert error_code(r.get(f"/runs/{hidden_run['id']}")) == "run_not_found"
        w = r.post("/runs/wait", json={"ids": [out[1]["run"]["id"], hidden_run["id"]], "timeout": 5})
        assert w.status_code == 404 and error_code(w) == "run_not_found"
        assert w.json()["error"]["details"]["run_ids"] == [hidden_run["id"]]
        ok = r.post("/runs/wait", json={"ids": [out[1]["run"]["id"]], "timeout": 30}).json()
        assert ok["items"][0]["output"] == 20
    with server.client(viewer["key"]) as v:
        denied = v.post("/runs/batch", json={"runs": [{"tool": seen, "inputs": {"x": 1}}]})
        assert denied.status_code == 403 and error_code(denied) == "insufficient_role"
    assert error_code(api.post("/runs/wait", json={"ids": [f"run_nope{unique}"]})) == "run_not_found"


def test_wait_over_many_returns_the_unfinished_at_the_timeout(api, unique):
    quick, slow = f"wq-{unique}", f"ws-{unique}"
    deploy(api, quick, ECHO)
    deploy(api, slow, SLEEP)
    items = [{"tool": quick, "inputs": {"x": i}} for i in range(3)] + [{"tool": slow, "inputs": {"s": 30}}]
    created = api.post("/runs/batch", json={"runs": items}).json()["items"]
    ids = [i["run"]["id"] for i in created]
    # return_when=any answers as soon as one run has ended.
    first = api.post("/runs/wait", json={"ids": ids, "timeout": 30, "return_when": "any"}).json()
    assert first["items"] and all(run["status"] in TERMINAL for run in first["items"])
    started = time.monotonic()
    body = api.post("/runs/wait", json={"ids": ids + ids[:1], "timeout": 3}).json()
    assert time.monotonic() - started >= 2.9  # it held the request until the timeout
    assert [run["id"] for run in body["items"]] == ids[:3]  # the finished ones, in order, once
    assert [run["output"] for run in body["items"]] == [0, 10, 20]
    assert [run["id"] for run in body["pending"]] == [ids[3]]
    assert body["pending"][0]["status"] in ("queued", "running")
    # A cancel ends the last one: the wait sees it without waiting for its timeout.
    api.post(f"/runs/{ids[3]}/cancel", params={"wait": 0})
    started = time.monotonic()
    body = api.post("/runs/wait", json={"ids": ids, "timeout": 60}).json()
    assert time.monotonic() - started < 30
    assert body["pending"] == [] and body["items"][3]["status"] == "cancelled"
    assert "inputs" not in body["items"][0]
    for bad in ({"ids": ids, "timeout": 601}, {"ids": ids, "timeout": "soon"}, {"ids": "run_x"},
                {"ids": [1]}, {"ids": ids, "return_when": "some"}, {"ids": ids, "colour": 1}):
        assert error_code(api.post("/runs/wait", json=bad)) == "validation_error", bad

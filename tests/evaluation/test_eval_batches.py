"""Evaluation batches through the real server: inline examples, a dataset's or set's rows,
a workflow; the summary's counts, mean score and regressions against the previous batch;
cancel; bad input refused with nothing started; who may see and start what."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.compat.datagen_support import other_workspace_key
from tests.support.api import deploy, error_code
from tests.support.servers import Server

V1 = "def main(x: int):\n    return {'y': x * 2}\n"
V2 = "def main(x: int):\n    return {'y': x * 2 if x != 2 else 99}\n"
SLEEP = "import time\n\ndef main(x: int = 1):\n    time.sleep(60)\n    return x\n"


def _finished(api: httpx.Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/batches/{batch_id}").json()
        if body["status"] != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _examples(n: int = 3) -> list[dict[str, Any]]:
    return [{"example_id": f"e{i}", "inputs": {"x": i}} for i in range(1, n + 1)]


def test_batches_score_against_expected_and_find_regressions(api: httpx.Client, unique: str) -> None:
    tool = f"bt-{unique}"
    deploy(api, tool, V1)
    r = api.post("/batches", json={"tool": tool, "examples": _examples()})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["id"].startswith("bat_") and first["target"]["name"] == tool and first["example_count"] == 3
    first = _finished(api, first["id"])
    assert first["counts"] == {"succeeded": 3} and first["status"] == "finished"
    assert first["mean_score"] is None and first["scored"] == 0 and first["regressions"] == []
    runs = api.get("/runs", params={"batch_id": first["id"]}).json()["items"]
    assert sorted(r["tags"]["example_id"] for r in runs) == ["e1", "e2", "e3"]
    for run in runs:  # the first batch's outputs become the expectation
        assert api.post(f"/runs/{run['id']}/expected", json={"copy_output": True}).status_code == 201
    first = api.get(f"/batches/{first['id']}").json()
    assert first["mean_score"] == 1.0 and first["scored"] == 3

    assert api.patch(f"/tools/{tool}", json={"code": V2}).status_code == 200
    second = _finished(api, api.post("/batches", json={"tool": tool, "examples": _examples()}).json()["id"])
    assert second["previous_batch_id"] == first["id"]
    assert second["counts"] == {"succeeded": 3}
    assert second["mean_score"] == round(2 / 3, 6)
    assert [(g["example_id"], g["score"], g["previous_score"]) for g in second["regressions"]] == [("e2", 0.0, 1.0)]
    listed = api.get("/batches", params={"tool": tool}).json()["items"]
    assert [b["id"] for b in listed] == [second["id"], first["id"]]
    assert listed[0]["counts"] == {"succeeded": 3} and listed[0]["status"] == "finished"

    # A version pinned: v1 again, no regression against the v2 batch.
    third = _finished(api, api.post("/batches", json={"tool": tool, "version": 1, "examples": _examples()}).json()["id"])
    assert third["mean_score"] == 1.0 and third["regressions"] == []


def test_examples_from_a_dataset_or_a_set(api: httpx.Client, unique: str) -> None:
    tool = f"bd-{unique}"
    deploy(api, tool, V1)
    ns = f"evns_{unique}"
    assert api.post("/namespaces", json={"name": ns}).status_code == 201
    rows = [{"example_id": "a", "x": 1, "note": "n1"}, {"example_id": "b", "x": 2, "note": "n2"}]
    assert api.post(f"/namespaces/{ns}/datasets/ex/rows", params={"create": True}, json=rows).status_code in (200, 201)
    assert api.post(f"/namespaces/{ns}/datasets/noid/rows", params={"create": True},
                    json=[{"x": 1}]).status_code in (200, 201)
    r = api.post("/batches", json={"tool": tool, "examples": {"dataset": f"{ns}/ex", "columns": ["x"]}})
    assert r.status_code == 201, r.text
    done = _finished(api, r.json()["id"])
    assert done["counts"] == {"succeeded": 2} and done["source"] == {"kind": "dataset", "name": f"{ns}/ex"}
    # Without columns every other column is an input: the tool refuses "note", per example.
    r = api.post("/batches", json={"tool": tool, "examples": {"dataset": f"{ns}/ex"}})
    assert r.status_code == 201
    assert {e["code"] for e in r.json()["errors"]} == {"invalid_inputs"} and r.json()["run_count"] == 0

    before = api.get("/batches", params={"tool": tool, "include_total": True}).json()["total"]
    r = api.post("/batches", json={"tool": tool, "examples": {"dataset": f"{ns}/noid"}})
    assert r.status_code == 400 and error_code(r) == "missing_example_id"
    assert api.get("/batches", params={"tool": tool, "include_total": True}).json()["total"] == before

    set_name = f"evset_{unique}"
    assert api.post("/sets", json={"name": set_name, "rows": [{"example_id": "s1", "x": 5}]}).status_code == 201
    done = _finished(api, api.post("/batches", json={"tool": tool, "examples": {"set": set_name}}).json()["id"])
    assert done["counts"] == {"succeeded": 2 - 1} and done["source"] == {"kind": "set", "name": set_name}
    no_id = f"evset2_{unique}"
    assert api.post("/sets", json={"name": no_id, "rows": [{"x": 5}]}).status_code == 201
    assert error_code(api.post("/batches", json={"tool": tool, "examples": {"set": no_id}})) == "missing_example_id"


def test_workflow_batch_and_cancel(api: httpx.Client, unique: str) -> None:
    tool = f"bw-{unique}"
    deploy(api, tool, V1)
    flow = f"bwf-{unique}"
    r = api.post("/workflows", json={"definition": {"name": flow, "inputs": {
        "type": "object", "properties": {"x": {"type": "integer"}}},
                                                    "steps": [{"id": "s", "uses": tool, "with": {"x": "${{ inputs.x }}"}}]}})
    assert r.status_code == 201, r.text
    r = api.post("/batches", json={"workflow": flow, "examples": _examples(2)})
    assert r.status_code == 201, r.text
    assert r.json()["errors"] == [], r.json()
    done = _finished(api, r.json()["id"])
    assert done["target"]["type"] == "workflow" and done["counts"] == {"succeeded": 2}

    slow = f"bs-{unique}"
    deploy(api, slow, SLEEP)
    started = api.post("/batches", json={"tool": slow, "examples": _examples(3)}).json()
    cancelled = api.post(f"/batches/{started['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = _finished(api, started["id"], timeout=30)
    assert body["status"] == "cancelled" and body["cancelled_at"]
    deadline = time.monotonic() + 30
    while set(api.get(f"/batches/{started['id']}").json()["counts"]) != {"cancelled"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.get(f"/batches/{started['id']}").json()["counts"] == {"cancelled": 3}


def test_bad_batches_are_refused(api: httpx.Client, unique: str) -> None:
    tool = f"bb-{unique}"
    deploy(api, tool, V1)
    cases = [
        ({"examples": _examples()}, "validation_error"),
        ({"tool": tool, "workflow": "x", "examples": _examples()}, "validation_error"),
        ({"tool": tool, "examples": []}, "validation_error"),
        ({"tool": tool, "examples": [{"example_id": "a", "inputs": {}}, {"example_id": "a", "inputs": {}}]},
         "duplicate_example_id"),
        ({"tool": tool, "examples": [{"example_id": "", "inputs": {}}]}, "validation_error"),
        ({"tool": tool, "examples": {"dataset": "no-slash"}}, "validation_error"),
        ({"tool": tool, "examples": {"dataset": "nons/nods"}}, "namespace_not_found"),
        ({"tool": tool, "examples": {"set": f"none-{unique}"}}, "set_not_found"),
        ({"tool": f"none-{unique}", "examples": _examples()}, "tool_not_found"),
        ({"tool": tool, "examples": _examples(), "colour": 1}, "validation_error"),
    ]
    for body, code in cases:
        r = api.post("/batches", json=body)
        assert r.status_code in (400, 404), (body, r.text)
        assert error_code(r) == code, (body, r.text)
    r = api.post("/batches", json={"tool": tool, "examples": [{"example_id": str(i), "inputs": {"x": i}}
                                                              for i in range(1001)]})
    assert r.status_code == 413 and error_code(r) == "batch_too_large"
    assert api.get("/batches", params={"tool": tool, "include_total": True}).json()["total"] == 0
    assert api.get("/runs", params={"tool": tool, "include_total": True}).json()["total"] == 0
    assert error_code(api.get("/batches/bat_nope")) == "batch_not_found"


def test_who_may_see_and_start_batches(api: httpx.Client, unique: str, server: Server) -> None:
    tool, other = f"bx-{unique}", f"by-{unique}"
    deploy(api, tool, V1)
    deploy(api, other, V1)
    mine = api.post("/batches", json={"tool": tool, "examples": _examples(1)}).json()["id"]
    theirs = api.post("/batches", json={"tool": other, "examples": _examples(1)}).json()["id"]

    def key(role: str, tools: list[str] | None = None) -> str:
        body: dict = {"name": f"bx-{role}", "role": role}
        if tools:
            body["restrictions"] = {"tools": tools}
        return api.post("/tokens", json=body).json()["key"]

    with server.client(key("viewer")) as viewer:
        assert viewer.get(f"/batches/{mine}").status_code == 200
        assert viewer.get("/batches").status_code == 200
        for resp in (viewer.post("/batches", json={"tool": tool, "examples": _examples(1)}),
                     viewer.post(f"/batches/{mine}/cancel")):
            assert resp.status_code == 403 and error_code(resp) == "insufficient_role"
    with server.client(key("member", [tool])) as restricted:
        assert restricted.post("/batches", json={"tool": tool, "examples": _examples(1)}).status_code == 201
        assert error_code(restricted.post("/batches", json={"tool": other, "examples": _examples(1)})) \
            == "tool_not_found"
        assert error_code(restricted.get(f"/batches/{theirs}")) == "batch_not_found"
        assert error_code(restricted.post(f"/batches/{theirs}/cancel")) == "batch_not_found"
        seen = {b["id"] for b in restricted.get("/batches", params={"limit": 1000}).json()["items"]}
        assert mine in seen and theirs not in seen
    with server.client(other_workspace_key(server)) as stranger:
        assert error_code(stranger.get(f"/batches/{mine}")) == "batch_not_found"
        assert error_code(stranger.post(f"/batches/{mine}/cancel")) == "batch_not_found"
        assert stranger.get("/batches").json()["items"] == []
        assert error_code(stranger.post("/batches", json={"tool": tool, "examples": _examples(1)})) \
            == "tool_not_found"

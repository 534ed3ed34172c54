"""Workflow runs on a real server: steps as child runs, data passed between them, for_each
with max_parallel, if/skip rules, retries, waits for input, cancel cascade, the trace,
the definition snapshot and step artifacts."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import httpx
import pytest

from tests.support.api import deploy, error_code, wait_status

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def save(api: httpx.Client, yaml_text: str, **params: Any) -> dict[str, Any]:
    response = api.post("/workflows", content=yaml_text, headers={"content-type": "application/yaml"},
                        params=params)
    assert response.status_code in (200, 201), response.text
    return response.json()


def start(api: httpx.Client, workflow: str, inputs: dict[str, Any] | None = None, wait: float = 60,
          **fields: Any) -> dict[str, Any]:
    response = api.post("/runs", params={"wait": wait}, json={"workflow": workflow, "inputs": inputs or {}, **fields})
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def children(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = api.get("/runs", params={"parent_run_id": run_id, "limit": 1000, "order": "asc"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
def tools(api: httpx.Client, unique: str) -> dict[str, str]:
    names = {k: f"{k}-{unique}" for k in ("double", "add", "boom", "flaky", "sleepy", "report")}
    deploy(api, names["double"], "def main(n: int) -> int:\n    return n * 2\n")
    deploy(api, names["add"], "def main(a: int, b: int = 0) -> dict:\n    return {'sum': a + b}\n")
    deploy(api, names["boom"], "def main(x: int = 0):\n    raise ValueError('boom ' + str(x))\n")
    deploy(api, names["sleepy"], "import time\n\ndef main(s: float = 30):\n    time.sleep(s)\n    return s\n")
    deploy(api, names["report"], (
        "from pathlib import Path\nimport os\n\n"
        "def main(text: str = 'hi'):\n"
        "    Path(os.environ.get('RUNYARD_OUTPUT_DIR', 'output')).mkdir(exist_ok=True)\n"
        "    Path(os.environ.get('RUNYARD_OUTPUT_DIR', 'output'), 'report.txt').write_text(text)\n"
        "    return len(text)\n"))
    return names


def test_steps_chain_and_outputs_flow_between_them(api: httpx.Client, tools: dict[str, str], unique: str) -> None:
    name = f"chain-{unique}"
    save(api, f"""
name: {name}
inputs:
  type: object
  properties:
    n: {{type: integer}}
  required: [n]
steps:
  - id: first
    uses: {tools['double']}
    with: {{n: "${{{{ inputs.n }}}}"}}
  - id: second
    uses: {tools['add']}
    needs: first
    with:
      a: ${{{{ steps.first.output }}}}
      b: 1
outputs:
  total: ${{{{ steps.second.output.sum }}}}
""")
    run = start(api, name, {"n": 5})
    assert run["status"] == "succeeded", run
    assert run["type"] == "workflow" and run["tool_name"] == name
    assert run["output"] == {"total": 11}
    kids = children(api, run["id"])
    assert [k["step_id"] for k in kids] == ["first", "second"]
    assert {k["trigger"] for k in kids} == {"workflow"}
    assert {k["triggered_by"] for k in kids} == {run["id"]}
    trace = api.get(f"/runs/{run['id']}/trace").json()["items"]
    assert [t["step_id"] for t in trace] == ["first", "second"]
    assert all(t["status"] == "succeeded" and t["duration_ms"] is not None and t["input_digest"] for t in trace)
    definition = api.get(f"/runs/{run['id']}/definition").json()
    assert definition["version"] == 1 and f"name: {name}" in definition["source"]
    listed = api.get("/runs", params={"type": "workflow", "source": name}).json()["items"]
    assert [r["id"] for r in listed] == [run["id"]]


def test_for_each_fans_out_with_max_parallel_and_collects_outputs(api: httpx.Client, tools: dict[str, str],
                                                                  unique: str) -> None:
    name = f"fan-{unique}"
    save(api, f"""
name: {name}
inputs: {{type: object, properties: {{items: {{type: array}}}}}}
steps:
  - id: each
    uses: {tools['double']}
    for_each: inputs.items
    max_parallel: 3
    with: {{n: "${{{{ item }}}}"}}
outputs:
  doubled: ${{{{ steps.each.output }}}}
""")
    run = start(api, name, {"items": list(range(12))})
    assert run["status"] == "succeeded", run
    assert run["output"] == {"doubled": [i * 2 for i in range(12)]}
    kids = children(api, run["id"])
    assert sorted(k["item_index"] for k in kids) == list(range(12))
    # never more than 3 at once
    spans = sorted((k["started_at"], k["finished_at"]) for k in kids)
    for start_at, _ in spans:
        overlapping = [s for s in spans if s[0] <= start_at < s[1]]
        assert len(overlapping) <= 3


def test_a_failed_step_skips_its_dependants_and_fails_the_run(api: httpx.Client, tools: dict[str, str],
                                                              unique: str) -> None:
    name = f"fail-{unique}"
    save(api, f"""
name: {name}
steps:
  - id: bad
    uses: {tools['boom']}
  - id: after
    uses: {tools['double']}
    needs: bad
    with: {{n: 1}}
  - id: alert
    uses: {tools['double']}
    needs: bad
    if: steps.bad.status == 'failed'
    with: {{n: 7}}
  - id: tolerant
    uses: {tools['boom']}
    continue_on_error: true
  - id: goes_on
    uses: {tools['double']}
    needs: tolerant
    with: {{n: 2}}
""")
    run = start(api, name)
    assert run["status"] == "failed", run
    assert run["error"]["type"] == "step_failed" and run["error"]["step_id"] == "bad"
    assert "boom" in run["error"]["message"]
    trace = {t["step_id"]: t for t in api.get(f"/runs/{run['id']}/trace").json()["items"]}
    assert trace["bad"]["status"] == "failed"
    assert trace["after"]["status"] == "skipped" and trace["after"]["run_id"] is None
    assert trace["alert"]["status"] == "succeeded"
    assert trace["goes_on"]["status"] == "succeeded"


def test_if_false_skips_and_retries_retry(api: httpx.Client, tools: dict[str, str], unique: str) -> None:
    name = f"ifretry-{unique}"
    save(api, f"""
name: {name}
inputs: {{type: object, properties: {{go: {{type: boolean, default: false}}}}}}
steps:
  - id: maybe
    uses: {tools['double']}
    if: inputs.go
    with: {{n: 1}}
  - id: retried
    uses: {tools['boom']}
    retries: 2
    retry_backoff_s: 0.01
""")
    run = start(api, name)
    assert run["status"] == "failed"
    kids = {k["step_id"]: k for k in children(api, run["id"])}
    assert "maybe" not in kids
    assert kids["retried"]["attempt"] == 3 and kids["retried"]["max_attempts"] == 3


def test_wait_for_input_holds_no_slot_and_resumes(api: httpx.Client, tools: dict[str, str], unique: str) -> None:
    name = f"approve-{unique}"
    save(api, f"""
name: {name}
steps:
  - id: approve
    kind: wait_for_input
    with: {{prompt: "ok?"}}
  - id: after
    uses: {tools['double']}
    needs: approve
    if: steps.approve.output.ok == true
    with: {{n: "${{{{ steps.approve.output.n }}}}"}}
outputs:
  result: ${{{{ steps.after.output }}}}
""")
    began = time.monotonic()
    response = api.post("/runs", params={"wait": 30}, json={"workflow": name})
    assert response.status_code == 202, response.text  # the wait ends at the wait for input
    assert time.monotonic() - began < 10
    run = response.json()
    assert run["status"] == "waiting_for_input"
    listed = api.get("/runs", params={"status": "waiting_for_input", "source": name, "type": "workflow"}).json()["items"]
    assert [r["id"] for r in listed] == [run["id"]]
    wrong = api.post(f"/runs/{run['id']}/input", json={"payload": {"ok": True}, "step_id": "nope"})
    assert wrong.status_code == 409 and error_code(wrong) == "invalid_state"
    resumed = api.post(f"/runs/{run['id']}/input", json={"payload": {"ok": True, "n": 21}})
    assert resumed.status_code == 200, resumed.text
    done = wait_status(api, run["id"], TERMINAL)
    assert done["status"] == "succeeded" and done["output"] == {"result": 42}
    again = api.post(f"/runs/{run['id']}/input", json={"payload": {}})
    assert again.status_code == 409


def test_a_wait_times_out(api: httpx.Client, unique: str) -> None:
    name = f"timeout-{unique}"
    save(api, f"""
name: {name}
steps:
  - id: approve
    kind: wait_for_input
    timeout: 0.5
""")
    run = start(api, name, wait=0)
    done = wait_status(api, run["id"], TERMINAL, timeout=20)
    assert done["status"] == "failed"
    assert done["error"]["step_error"]["type"] == "timed_out"


def test_cancel_cascades_to_running_steps(api: httpx.Client, tools: dict[str, str], unique: str) -> None:
    name = f"cancel-{unique}"
    save(api, f"""
name: {name}
steps:
  - id: a
    uses: {tools['sleepy']}
  - id: b
    uses: {tools['sleepy']}
  - id: c
    uses: {tools['double']}
    needs: [a, b]
    with: {{n: 1}}
""")
    run = start(api, name, wait=0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = children(api, run["id"])
        if len(kids) == 2 and all(k["status"] == "running" for k in kids):
            break
        time.sleep(0.1)
    cancelled = api.post(f"/runs/{run['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    for kid in children(api, run["id"]):
        assert wait_status(api, kid["id"], TERMINAL)["status"] == "cancelled"
    time.sleep(0.5)
    assert [k["step_id"] for k in children(api, run["id"])] == ["a", "b"]  # c never started


def test_step_artifacts_appear_under_output_step(api: httpx.Client, tools: dict[str, str], unique: str) -> None:
    name = f"art-{unique}"
    save(api, f"""
name: {name}
steps:
  - id: rep
    uses: {tools['report']}
    with: {{text: hello}}
""")
    run = start(api, name)
    assert run["status"] == "succeeded", run
    paths = [a["path"] for a in api.get(f"/runs/{run['id']}/artifacts").json()["items"]]
    assert paths == ["output/rep/report.txt"]
    body = api.get(f"/runs/{run['id']}/artifacts/output/rep/report.txt")
    assert body.status_code == 200 and body.text == "hello"
    archive = zipfile.ZipFile(io.BytesIO(api.get(f"/runs/{run['id']}/artifacts.zip").content))
    assert archive.namelist() == ["output/rep/report.txt"]


def test_a_tool_deleted_after_publish_fails_its_step(api: httpx.Client, unique: str) -> None:
    tool = f"gone-{unique}"
    deploy(api, tool, "def main():\n    return 1\n")
    name = f"gone-flow-{unique}"
    save(api, f"name: {name}\nsteps:\n  - id: s\n    uses: {tool}\n")
    assert api.delete(f"/tools/{tool}").status_code == 204
    run = start(api, name)
    assert run["status"] == "failed"
    assert run["error"]["step_error"]["type"] == "tool_not_found"


def test_nested_workflows_and_blocks(api: httpx.Client, tools: dict[str, str], unique: str) -> None:
    block = f"blk-{unique}"
    save(api, f"""
name: {block}
kind: block
inputs: {{type: object, properties: {{n: {{type: integer}}}}, required: [n]}}
steps:
  - id: d
    uses: {tools['double']}
    with: {{n: "${{{{ inputs.n }}}}"}}
outputs:
  v: ${{{{ steps.d.output }}}}
""")
    outer = f"outer-{unique}"
    save(api, f"""
name: {outer}
steps:
  - id: inner
    uses: block:{block}
    with: {{n: 4}}
outputs:
  v: ${{{{ steps.inner.output.v }}}}
""")
    run = start(api, outer)
    assert run["status"] == "succeeded" and run["output"] == {"v": 8}, run
    refused = api.post("/runs", json={"workflow": block})
    assert refused.status_code == 400 and error_code(refused) == "not_runnable"


def test_a_for_each_over_100000_items_honours_max_parallel(api: httpx.Client, unique: str) -> None:
    """100,000 items: never more than max_parallel step runs at once, items start in order,
    and cancelling the workflow stops it (the rest never start)."""
    tool = f"noop-{unique}"
    deploy(api, tool, "def main(n: int = 0):\n    return n\n")
    name = f"huge-{unique}"
    save(api, f"""
name: {name}
inputs: {{type: object, properties: {{items: {{type: array}}}}}}
steps:
  - id: each
    uses: {tool}
    for_each: inputs.items
    max_parallel: 4
    with: {{n: "${{{{ item }}}}"}}
""")
    run = start(api, name, {"items": list(range(100_000))}, wait=0)
    deadline = time.monotonic() + 60
    seen_active = []
    while time.monotonic() < deadline:
        active = api.get("/runs", params={"parent_run_id": run["id"], "status": "queued,running", "limit": 100})
        seen_active.append(len(active.json()["items"]))
        done = api.get("/runs", params={"parent_run_id": run["id"], "status": "succeeded", "limit": 1,
                                        "include_total": True}).json()["total"]
        if done >= 40:
            break
        time.sleep(0.05)
    assert done >= 40, done
    assert max(seen_active) <= 4, seen_active
    cancelled = api.post(f"/runs/{run['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    time.sleep(1.0)
    kids = children(api, run["id"])
    assert len(kids) < 1000
    assert sorted(k["item_index"] for k in kids) == list(range(len(kids)))
    assert all(k["status"] in TERMINAL for k in kids)

"""``runyard workflows``, ``runyard folders``, ``runyard runs tree`` and ``runyard runs input``
against the shared server: deploy from a file (and the problems of an invalid one, with
their lines), list/get/versions/publish with tags, runs with uploaded files, a wait for
input answered from the command line, and the step tree."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Invoke, as_json

DOUBLE = "def main(n: int) -> int:\n    return n * 2\n"
READ = "def main(doc: str) -> str:\n    return open(doc).read()\n"


def ok(cli: Invoke, *args: str, **kwargs: Any) -> Any:
    r = cli(*args, "--json", **kwargs)
    assert r.exit_code == 0, r.output
    return as_json(r)


def deploy_tool(cli: Invoke, tmp_path: Path, name: str, code: str) -> str:
    f = tmp_path / f"{name}.py"
    f.write_text(code)
    ok(cli, "deploy", str(f), "--name", name)
    return name


@pytest.fixture
def double(cli: Invoke, tmp_path: Path, unique: str) -> str:
    return deploy_tool(cli, tmp_path, f"double-{unique}", DOUBLE)


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_help_lists_the_workflow_groups(cli: Invoke) -> None:
    r = cli("--help")
    assert r.exit_code == 0
    assert "workflows" in r.stdout and "folders" in r.stdout
    r = cli("runs", "--help")
    assert "tree" in r.stdout and "input" in r.stdout


def test_deploy_list_get_versions_publish_delete(cli: Invoke, double: str, unique: str, tmp_path: Path) -> None:
    name = f"wf-{unique}"
    text = (f"name: {name}\ndescription: first\nsteps:\n  - id: twice\n    uses: {double}\n"
            f"    with: {{n: 2}}\n")
    path = write(tmp_path, text)
    r = cli("workflows", "deploy", str(path), "--tag", "stable")
    assert r.exit_code == 0, r.output
    assert f"version 1 (stable) of {name}" in r.stderr
    w = ok(cli, "workflows", "deploy", str(write(tmp_path, text.replace("first", "second"))))
    assert w["latest_version"] == 2 and w["name"] == name
    draft = ok(cli, "workflows", "deploy", str(write(tmp_path, text.replace("first", "third"))), "--draft")
    assert draft["has_draft"] is True and draft["latest_version"] == 2

    r = cli("workflows", "list", "--search", unique)
    assert r.exit_code == 0 and name in r.stdout and "v2" in r.stdout
    assert [x["name"] for x in ok(cli, "workflows", "list", "--search", unique)] == [name]
    r = cli("workflows", "get", name, "--source")
    assert r.exit_code == 0 and "second" in r.stdout and "twice" in r.stdout and f"uses: {double}" in r.stdout

    v = ok(cli, "workflows", "publish", name, "--tag", "prod")
    assert v["version"] == 3 and v["tag"] == "prod"
    r = cli("workflows", "publish", name)
    assert r.exit_code == 1 and "no_draft" in r.stderr
    r = cli("workflows", "publish", name, "--tag", "stable", "--version", "3")
    assert r.exit_code == 0 and "Tagged version 3 (stable)" in r.stderr
    r = cli("workflows", "versions", name)
    assert r.exit_code == 0 and "published" in r.stdout and "stable" in r.stdout
    assert [x["version"] for x in ok(cli, "workflows", "versions", name)] == [3, 2, 1]
    r = cli("workflows", "versions", name, "--version", "stable")
    assert r.exit_code == 0 and "third" in r.stdout

    folder = ok(cli, "folders", "create", f"f-{unique}", "--description", "mine")
    assert folder["id"] in [f["id"] for f in ok(cli, "folders", "list")]
    ok(cli, "workflows", "deploy", str(write(tmp_path, text)), "--folder", folder["id"])
    assert [x["name"] for x in ok(cli, "workflows", "list", "--folder", folder["id"])] == [name]

    r = cli("workflows", "delete", name)
    assert r.exit_code == 0
    r = cli("workflows", "get", name)
    assert r.exit_code == 1 and "workflow_not_found" in r.stderr
    assert ok(cli, "folders", "delete", folder["id"]) == {"deleted": folder["id"]}


def test_an_invalid_definition_shows_its_lines(cli: Invoke, double: str, unique: str, tmp_path: Path) -> None:
    path = write(tmp_path, f"name: bad-{unique}\nsteps:\n  - id: a\n    uses: {double}\n    with: {{n: 1}}\n"
                           f"    colour: red\n  - id: b\n    uses: {double}\n    needs: nowhere\n    with: {{n: 1}}\n")
    r = cli("workflows", "deploy", str(path))
    assert r.exit_code == 1
    assert f"{path}:6:5" in r.stderr and "steps[0].colour" in r.stderr and "[unknown_key]" in r.stderr
    assert "colour: red" in r.stderr and "^" in r.stderr
    assert f"{path}:9" in r.stderr and "[unknown_step]" in r.stderr
    r = cli("workflows", "deploy", str(path), "--json")
    assert r.exit_code == 1
    issues = as_json(r)["error"]["details"]["issues"]
    assert {i["code"] for i in issues} >= {"unknown_key", "unknown_step"}


def test_run_with_a_file_input_and_the_tree(cli: Invoke, unique: str, tmp_path: Path) -> None:
    reader = deploy_tool(cli, tmp_path, f"read-{unique}", READ)
    name = f"reads-{unique}"
    ok(cli, "workflows", "deploy", str(write(tmp_path, f"""
name: {name}
inputs: {{type: object, properties: {{doc: {{type: string, format: file}}}}}}
steps:
  - id: read
    uses: {reader}
    with:
      doc: ${{{{ inputs.doc }}}}
  - id: each
    uses: {reader}
    needs: read
    for_each: [1, 2]
    with:
      doc: ${{{{ inputs.doc }}}}
outputs:
  text: ${{{{ steps.read.output }}}}
""")))
    doc = tmp_path / "doc.txt"
    doc.write_text("file text")
    r = cli("workflows", "run", name, "-i", f"doc=@{doc}", "--wait")
    assert r.exit_code == 0, r.output
    assert '"text": "file text"' in r.stdout
    run = ok(cli, "workflows", "run", name, "-i", f"doc=@{doc}", "--version", "1", "--wait")
    assert run["status"] == "succeeded" and run["output"] == {"text": "file text"}

    r = cli("runs", "tree", run["id"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert name in out and run["id"] in out
    assert "read" in out and "each" in out and "for_each: 2 items" in out
    assert "[0]" in out and "[1]" in out and out.count("succeeded") >= 4
    tree = ok(cli, "runs", "tree", run["id"])
    assert [(s["step_id"], s["item_index"], s["status"]) for s in tree["steps"]] == [
        ("read", None, "succeeded"), ("each", 0, "succeeded"), ("each", 1, "succeeded")]


def test_wait_for_input_answered_by_runs_input_and_a_nested_tree(cli: Invoke, double: str, unique: str,
                                                                 tmp_path: Path) -> None:
    inner = f"inner-{unique}"
    ok(cli, "workflows", "deploy", str(write(tmp_path, f"""
name: {inner}
steps:
  - id: d
    uses: {double}
    with: {{n: 3}}
outputs:
  v: ${{{{ steps.d.output }}}}
""", "inner.yaml")))
    name = f"approve-{unique}"
    ok(cli, "workflows", "deploy", str(write(tmp_path, f"""
name: {name}
steps:
  - id: approve
    kind: wait_for_input
    with: {{prompt: "go?"}}
  - id: nested
    uses: workflow:{inner}
    needs: approve
  - id: never
    uses: {double}
    needs: approve
    if: steps.approve.output.ok == false
    with: {{n: 1}}
outputs:
  v: ${{{{ steps.nested.output.v }}}}
""")))
    r = cli("workflows", "run", name, "--wait", "--timeout", "30")
    assert r.exit_code == 4, r.output
    assert "waits for input at step approve" in r.stderr
    started = ok(cli, "workflows", "run", name)
    assert started["type"] == "workflow"
    run_id = started["id"]
    deadline = time.monotonic() + 30
    while ok(cli, "runs", "get", run_id)["status"] != "waiting_for_input" and time.monotonic() < deadline:
        time.sleep(0.1)
    r = cli("runs", "tree", run_id)
    assert "approve" in r.stdout and "waiting_for_input" in r.stdout and "pending" in r.stdout

    r = cli("runs", "input", run_id, "--payload", "not json")
    assert r.exit_code == 2
    r = cli("runs", "input", run_id, "--payload", '{"ok": true}', "--step", "approve")
    assert r.exit_code == 0, r.output
    done = ok(cli, "runs", "wait", run_id, "--timeout", "60")
    assert done["status"] == "succeeded" and done["output"] == {"v": 6}

    r = cli("runs", "tree", run_id)
    assert r.exit_code == 0
    out = r.stdout
    for step in ("approve", "nested", "never", "d"):
        assert step in out
    assert "skipped" in out and out.count("succeeded") >= 4
    tree = ok(cli, "runs", "tree", run_id)
    nested = next(s for s in tree["steps"] if s["step_id"] == "nested")
    assert nested["type"] == "workflow" and [s["step_id"] for s in nested["steps"]] == ["d"]

"""client.workflows and client.folders against the real server: deploy from a file, the
issues of an invalid definition, versions, drafts and tags, runs with file inputs, waits
for input, the step runs, the trace and the definition snapshot; the async client."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import pytest

from runyard import AsyncClient, Client, ConflictError, NotFoundError, ValidationError
from runyard.sdk.models import RunDefinition, TraceStep, Workflow, WorkflowVersion

DOUBLE = "def main(n: int) -> int:\n    return n * 2\n"
READ = "def main(doc: str) -> str:\n    return open(doc).read()\n"


def flow(name: str, tool: str, description: str = "doubles") -> str:
    return f"""name: {name}
description: {description}
inputs:
  type: object
  properties:
    n: {{type: integer}}
  required: [n]
steps:
  - id: twice
    uses: {tool}
    with:
      n: ${{{{ inputs.n }}}}
outputs:
  result: ${{{{ steps.twice.output }}}}
"""


@pytest.fixture
def double(client: Client, unique: str) -> str:
    name = f"double-{unique}"
    client.tools.deploy(DOUBLE, name=name)
    return name


def wait_for_status(client: Client, run_id: str, status: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = client.runs.get(run_id)
        if run.status == status or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def test_deploy_from_a_file_list_get_versions_publish_and_tags(client: Client, double: str, unique: str,
                                                               tmp_path: Path) -> None:
    name = f"wf-{unique}"
    path = tmp_path / "flow.yaml"
    path.write_text(flow(name, double))
    created = client.workflows.create(path, tag="stable")
    assert isinstance(created, Workflow)
    assert created.name == name and created.kind == "workflow" and created.latest_version == 1
    assert created.tag == "stable" and created.description == "doubles"
    assert created.definition is not None and created.definition["steps"][0]["id"] == "twice"

    # The same by a str path; YAML text; a dict (JSON): each a new version.
    assert client.workflows.create(str(path)).latest_version == 2
    assert client.workflows.create(flow(name, double, "v3")).latest_version == 3
    as_dict = {"name": name, "description": "v4", "steps": [{"id": "s", "uses": double, "with": {"n": 1}}]}
    assert client.workflows.create(as_dict).latest_version == 4

    # A draft, then published with a tag.
    drafted = client.workflows.create(flow(name, double, "draft"), draft=True)
    assert drafted.has_draft and drafted.latest_version == 4
    assert drafted.draft is not None and drafted.draft.status == "draft"
    published = client.workflows.publish(name, tag="prod")
    assert isinstance(published, WorkflowVersion)
    assert published.version == 5 and published.tag == "prod" and published.status == "published"
    with pytest.raises(ConflictError) as no_draft:
        client.workflows.publish(name)
    assert no_draft.value.code == "no_draft"
    moved = client.workflows.publish(name, tag="stable", version=2)
    assert moved.version == 2 and moved.tag == "stable"

    versions = list(client.workflows.versions(name))
    assert sorted(v.version for v in versions if v.version is not None) == [1, 2, 3, 4, 5]
    assert {v.version: v.tag for v in versions}[2] == "stable"
    by_tag = client.workflows.version(name, "prod")
    assert by_tag.version == 5 and by_tag.source is not None and "description: draft" in by_tag.source
    assert client.workflows.version(name, 3).definition["description"] == "v3"  # type: ignore[index]

    got = client.workflows.get(name)
    assert got.id == created.id and got.latest_version == 5 and got.tag == "prod"
    assert client.workflows.get(created.id).name == name
    assert [w.name for w in client.workflows.list(search=unique)] == [name]
    assert [w.name for w in client.workflows.list(name=name, kind="workflow")] == [name]
    assert list(client.workflows.list(name=name, kind="block")) == []

    folder = client.folders.create(f"folder-{unique}", description="mine")
    assert folder.name == f"folder-{unique}" and folder.description == "mine"
    assert folder.id in [f.id for f in client.folders.list()]
    assert client.workflows.update(name, folder_id=folder.id).folder_id == folder.id
    assert [w.name for w in client.workflows.list(folder_id=folder.id)] == [name]
    with pytest.raises(ConflictError):
        client.folders.delete(folder)
    assert client.workflows.update(name, folder_id=None).folder_id is None
    assert client.folders.update(folder, name=f"renamed-{unique}").name == f"renamed-{unique}"
    assert client.folders.get(folder.id).name == f"renamed-{unique}"
    client.folders.delete(folder)

    updated = client.workflows.update(name, flow(name, double, "patched"))
    assert updated.latest_version == 6 and updated.description == "patched"

    client.workflows.delete(name)
    with pytest.raises(NotFoundError):
        client.workflows.get(name)


def test_an_invalid_definition_lists_its_issues_with_lines(client: Client, double: str, unique: str,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(f"name: bad-{unique}\nsteps:\n  - id: a\n    uses: {double}\n    with: {{n: 1}}\n    colour: red\n")
    with pytest.raises(ValidationError) as caught:
        client.workflows.create(path)
    issues = caught.value.issues
    assert issues and issues[0]["code"] == "unknown_key"
    assert issues[0]["line"] == 6 and issues[0]["path"] == "steps[0].colour"
    with pytest.raises(FileNotFoundError):
        client.workflows.create(tmp_path / "missing.yaml")
    with pytest.raises(FileNotFoundError):
        client.workflows.create("missing-flow.yaml")


def test_run_and_wait_uploads_a_path_and_runs_see_the_definition_and_trace(client: Client, unique: str,
                                                                           tmp_path: Path) -> None:
    reader = f"read-{unique}"
    client.tools.deploy(READ, name=reader)
    name = f"reads-{unique}"
    client.workflows.create(f"""
name: {name}
inputs: {{type: object, properties: {{doc: {{type: string, format: file}}}}}}
steps:
  - id: read
    uses: {reader}
    with:
      doc: ${{{{ inputs.doc }}}}
outputs:
  text: ${{{{ steps.read.output }}}}
""")
    doc = tmp_path / "doc.txt"
    doc.write_text("hello from a file")
    run = client.workflows.run_and_wait(name, input={"doc": doc}, timeout=60)
    assert run.status == "succeeded", run
    assert run.type == "workflow" and run.output == {"text": "hello from a file"}

    # An open binary file is uploaded too.
    with doc.open("rb") as fh:
        again = client.workflows.run_and_wait(name, {"doc": fh}, timeout=60)
    assert again.output == {"text": "hello from a file"}
    assert client.workflows.run_and_wait(name, {"doc": io.BytesIO(b"bytes")}, timeout=60).output == {"text": "bytes"}

    steps = list(client.runs.steps(run.id))
    assert [(s.step_id, s.status, s.parent_run_id) for s in steps] == [("read", "succeeded", run.id)]
    trace = client.runs.trace(run)
    assert all(isinstance(t, TraceStep) for t in trace)
    assert [(t.step_id, t.status, t.run_id) for t in trace] == [("read", "succeeded", steps[0].id)]
    assert trace[0].duration_ms is not None and trace[0].input_digest
    definition = client.runs.definition(run.id)
    assert isinstance(definition, RunDefinition)
    assert definition.workflow_name == name and definition.version == 1 and "uses: " + reader in definition.source


def test_waiting_for_input_and_send_input(client: Client, double: str, unique: str) -> None:
    name = f"approve-{unique}"
    client.workflows.create(f"""
name: {name}
steps:
  - id: approve
    kind: wait_for_input
    with: {{prompt: "n?"}}
  - id: twice
    uses: {double}
    needs: approve
    with: {{n: "${{{{ steps.approve.output.n }}}}"}}
outputs:
  result: ${{{{ steps.twice.output }}}}
""")
    run = client.workflows.run_and_wait(name, timeout=30)
    assert run.status == "waiting_for_input"
    with pytest.raises(ConflictError):
        client.runs.send_input(run.id, {"n": 1}, step_id="nope")
    resumed = client.runs.send_input(run, {"n": 21}, step_id="approve")
    assert resumed.id
    done = client.runs.wait(run.id, timeout=60)
    assert done.status == "succeeded" and done.output == {"result": 42}
    trace = client.runs.trace(run.id)
    assert [(t.step_id, t.type, t.status) for t in trace] == [("approve", "input", "succeeded"),
                                                              ("twice", "tool", "succeeded")]

    started = client.workflows.run(name, version=1)
    assert wait_for_status(client, started.id, "waiting_for_input").status == "waiting_for_input"
    client.runs.cancel(started.id)


def test_async_client(server: Any, double: str, unique: str) -> None:
    name = f"async-{unique}"

    async def go() -> None:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url) as c:
            created = await c.workflows.create(flow(name, double), tag="t1")
            assert created.latest_version == 1
            assert [w.name async for w in c.workflows.list(search=unique)] == [name]
            run = await c.workflows.run_and_wait(name, {"n": 4}, version="t1", timeout=60)
            assert run.output == {"result": 8}
            assert [s.step_id async for s in c.runs.steps(run.id)] == ["twice"]
            assert [t.step_id for t in await c.runs.trace(run.id)] == ["twice"]
            assert (await c.runs.definition(run.id)).version == 1
            started = await c.workflows.run(name, {"n": 5}, wait=30)
            assert started.output == {"result": 10}

    asyncio.run(go())


def test_read_definition_tells_paths_from_text(tmp_path: Path) -> None:
    from runyard.sdk.resources.workflows import read_definition

    path = tmp_path / "f.yml"
    path.write_text("name: f\n")
    assert read_definition(path) == "name: f\n" and read_definition(str(path)) == "name: f\n"
    assert read_definition("name: x.yaml") == "name: x.yaml"
    assert read_definition({"name": "x"}) == {"name": "x"}
    with pytest.raises(FileNotFoundError):
        read_definition(tmp_path / "nope.json")
    with pytest.raises(TypeError):
        read_definition(42)  # type: ignore[arg-type]

"""GET/DELETE /runs/{id}/files on a real server: input and output rows, a workflow run's
steps' files, deletion only before the run starts, ids that reach no other run's file."""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

import httpx

from tests.support.api import deploy, error_code, wait_status

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}
WRITER = """
from pathlib import Path
from runyard import context
def main(doc: str, note: str = "n"):
    text = Path(doc).read_text()
    (Path(context.output_dir()) / "sub").mkdir()
    (Path(context.output_dir()) / "sub" / "upper.txt").write_text(text.upper())
    return len(text)
"""
OPTIONAL_DOC = """
def main(doc: str = "", x: int = 1):
    return x
"""


def _token(api: httpx.Client, name: str, role: str, tools: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": name, "role": role}
    if tools is not None:
        body["restrictions"] = {"tools": tools}
    response = api.post("/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


def _files(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/runs/{run_id}/files")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return body["items"]


def _with_file(api: httpx.Client, tool: str, content: bytes, **payload: Any) -> dict[str, Any]:
    import json

    response = api.post("/runs", params={"wait": 30}, data={"payload": json.dumps({"tool": tool, **payload})},
                        files={"doc": ("Notes.txt", content, "text/plain")})
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def test_a_finished_run_lists_its_input_and_output_files(api: httpx.Client, unique: str) -> None:
    tool = f"files-{unique}"
    deploy(api, tool, WRITER)
    run = _with_file(api, tool, b"hello files\n")
    assert run["status"] == "succeeded", run
    items = _files(api, run["id"])
    assert [(i["direction"], i["name"]) for i in items] == [("input", "Notes.txt"), ("output", "sub/upper.txt")]
    given, written = items
    assert given["input"] == "doc" and given["size"] == 12 and given["content_type"] == "text/plain"
    assert given["sha256"] == hashlib.sha256(b"hello files\n").hexdigest()
    assert written["sha256"] == hashlib.sha256(b"HELLO FILES\n").hexdigest() and written["size"] == 12
    assert written["step"] is None and written["run_id"] == run["id"]
    assert len({given["id"], written["id"]}) == 2
    # The ids are stable between listings, and an output lists as the artifacts route names it.
    assert [i["id"] for i in _files(api, run["id"])] == [given["id"], written["id"]]
    assert api.get(f"/runs/{run['id']}/artifacts/{written['name']}").content == b"HELLO FILES\n"
    # Deleting after the run started: refused, nothing changes.
    refused = api.delete(f"/runs/{run['id']}/files/{given['id']}")
    assert refused.status_code == 409 and error_code(refused) == "run_already_started"
    assert _files(api, run["id"]) == items


def test_an_input_file_is_deleted_only_before_the_run_starts(api: httpx.Client, unique: str) -> None:
    tool = f"files-del-{unique}"
    deploy(api, tool, OPTIONAL_DOC)
    run = _with_file(api, tool, b"to delete", requires_confirmation=True)
    assert run["status"] == "awaiting_confirmation"
    (item,) = _files(api, run["id"])
    viewer = _token(api, f"v-{unique}", "viewer")
    with httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {viewer}"}) as as_viewer:
        denied = as_viewer.delete(f"/runs/{run['id']}/files/{item['id']}")
        assert denied.status_code == 403 and error_code(denied) == "insufficient_role"
    unknown = api.delete(f"/runs/{run['id']}/files/in_{'0' * 24}")
    assert unknown.status_code == 404 and error_code(unknown) == "run_file_not_found"
    deleted = api.delete(f"/runs/{run['id']}/files/{item['id']}")
    assert deleted.status_code == 204, deleted.text
    assert _files(api, run["id"]) == []
    assert api.get(f"/runs/{run['id']}").json()["input_files"] == []
    again = api.delete(f"/runs/{run['id']}/files/{item['id']}")
    assert again.status_code == 404 and error_code(again) == "run_file_not_found"
    # The run goes on without it.
    assert api.post(f"/runs/{run['id']}/confirm").status_code == 200
    assert wait_status(api, run["id"], TERMINAL)["status"] == "succeeded"


def test_a_required_file_of_a_queued_run_is_not_deleted(api: httpx.Client, unique: str) -> None:
    tool = f"files-req-{unique}"
    deploy(api, tool, WRITER)
    # Awaiting confirmation, a required file may go (confirming then refuses the run's inputs).
    run = _with_file(api, tool, b"x", requires_confirmation=True)
    (item,) = _files(api, run["id"])
    assert api.delete(f"/runs/{run['id']}/files/{item['id']}").status_code == 204
    refused = api.post(f"/runs/{run['id']}/confirm")
    assert refused.status_code == 400 and error_code(refused) == "invalid_inputs"


def test_file_ids_reach_no_other_run(api: httpx.Client, server: Any, unique: str) -> None:
    tool, other = f"files-a-{unique}", f"files-b-{unique}"
    deploy(api, tool, OPTIONAL_DOC)
    deploy(api, other, OPTIONAL_DOC)
    mine = _with_file(api, tool, b"mine", requires_confirmation=True)
    theirs = _with_file(api, other, b"theirs", requires_confirmation=True)
    (their_file,) = _files(api, theirs["id"])
    # Another run's file id, through this run: not found, and the other run keeps its file.
    crossed = api.delete(f"/runs/{mine['id']}/files/{their_file['id']}")
    assert crossed.status_code == 404 and error_code(crossed) == "run_file_not_found"
    assert _files(api, theirs["id"]) == [their_file]
    # Path tricks name no file either.
    for bad in ("..%2F..%2Fsecrets", "%2e%2e", "in_" + "f" * 200):
        response = api.delete(f"/runs/{mine['id']}/files/{bad}")
        assert response.status_code in (400, 404), response.text
    assert len(_files(api, mine["id"])) == 1
    # A key restricted to one tool sees no file of the other's runs.
    restricted = _token(api, f"r-{unique}", "member", tools=[tool])
    with server.client(restricted) as scoped:
        assert scoped.get(f"/runs/{mine['id']}/files").status_code == 200
        hidden = scoped.get(f"/runs/{theirs['id']}/files")
        assert hidden.status_code == 404 and error_code(hidden) == "run_not_found"
        hidden = scoped.delete(f"/runs/{theirs['id']}/files/{their_file['id']}")
        assert hidden.status_code == 404 and error_code(hidden) == "run_not_found"
    assert _files(api, theirs["id"]) == [their_file]
    missing = api.get("/runs/run_00000000000000000000000000/files")
    assert missing.status_code == 404 and error_code(missing) == "run_not_found"


def test_a_workflow_run_lists_its_steps_files(api: httpx.Client, unique: str) -> None:
    tool = f"files-step-{unique}"
    deploy(api, tool, WRITER)
    flow = f"files-flow-{unique}"
    definition = textwrap.dedent(f"""
        name: {flow}
        inputs:
          type: object
          properties:
            doc: {{type: string, format: file}}
          required: [doc]
        steps:
          - id: first
            uses: {tool}
            with:
              doc: ${{{{ inputs.doc }}}}
          - id: second
            uses: {tool}
            needs: first
            with:
              doc: ${{{{ inputs.doc }}}}
              note: again
        """)
    saved = api.post("/workflows", content=definition, headers={"content-type": "application/yaml"})
    assert saved.status_code in (200, 201), saved.text
    import json

    response = api.post("/runs", params={"wait": 60}, data={"payload": json.dumps({"workflow": flow})},
                        files={"doc": ("in.txt", b"flow text", "text/plain")})
    assert response.status_code in (200, 201, 202), response.text
    run = wait_status(api, response.json()["id"], TERMINAL, timeout=60)
    assert run["status"] == "succeeded", run
    items = _files(api, run["id"])
    inputs = [i for i in items if i["direction"] == "input"]
    outputs = [i for i in items if i["direction"] == "output"]
    # The workflow's own input once (its steps got the same file), each step's output with its step.
    assert [(i["name"], i["step"]) for i in inputs] == [("in.txt", None)]
    assert [(o["name"], o["step"]) for o in outputs] == [("output/first/sub/upper.txt", "first"),
                                                          ("output/second/sub/upper.txt", "second")]
    assert {o["run_id"] for o in outputs}.isdisjoint({run["id"]})
    artifacts = api.get(f"/runs/{run['id']}/artifacts").json()["items"]
    assert sorted(a["path"] for a in artifacts) == [o["name"] for o in outputs]
    assert len({i["id"] for i in items}) == len(items)

"""The /workflows API on a real server: save as YAML or JSON, versions, drafts, tags, runs by
version or tag, folders, validation errors that point at the line, file inputs, idempotency."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.api import deploy, error_code


def yaml_post(api: httpx.Client, text: str, **params: Any) -> httpx.Response:
    return api.post("/workflows", content=text, headers={"content-type": "application/yaml"}, params=params)


def flow(name: str, tool: str, n: int) -> str:
    return f"name: {name}\ndescription: adds {n}\nsteps:\n  - id: s\n    uses: {tool}\n    with: {{n: {n}}}\n" \
           f"outputs:\n  v: ${{{{ steps.s.output }}}}\n"


def test_versions_drafts_and_tags(api: httpx.Client, unique: str) -> None:
    tool, name = f"echo-{unique}", f"versions-{unique}"
    deploy(api, tool, "def main(n: int):\n    return n\n")
    first = yaml_post(api, flow(name, tool, 1))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["latest_version"] == 1 and body["kind"] == "workflow" and body["description"] == "adds 1"
    assert f"name: {name}" in body["source"]
    second = api.post("/workflows", json={"definition": flow(name, tool, 2), "tag": "stable"})
    assert second.status_code == 200 and second.json()["latest_version"] == 2 and second.json()["tag"] == "stable"
    draft = yaml_post(api, flow(name, tool, 3), draft="true")
    assert draft.status_code == 200 and draft.json()["latest_version"] == 2 and draft.json()["has_draft"]
    assert draft.json()["draft"]["version"] is None and "with: {n: 3}" in draft.json()["draft"]["source"]
    # runs use the latest published version unless told otherwise: a number or a tag
    latest = api.post("/runs", params={"wait": 30}, json={"workflow": name}).json()
    assert latest["output"] == {"v": 2} and latest["tool_version"] == 2
    older = api.post("/runs", params={"wait": 30}, json={"workflow": name, "version": 1}).json()
    assert older["output"] == {"v": 1}
    published = api.post(f"/workflows/{name}/versions", json={"tag": "stable"})
    assert published.status_code == 200 and published.json()["version"] == 3, published.text
    assert api.post(f"/workflows/{name}/versions", json={}).status_code == 409  # no draft left
    by_tag = api.post("/runs", params={"wait": 30}, json={"workflow": name, "version": "stable"}).json()
    assert by_tag["output"] == {"v": 3} and by_tag["tool_version"] == 3
    retag = api.post(f"/workflows/{name}/versions", json={"version": 1, "tag": "stable"})
    assert retag.status_code == 200 and retag.json()["version"] == 1
    versions = api.get(f"/workflows/{name}/versions").json()["items"]
    assert [(v["version"], v["tag"]) for v in versions] == [(3, None), (2, None), (1, "stable")]
    assert api.get(f"/workflows/{name}/versions/stable").json()["version"] == 1
    missing = api.post("/runs", json={"workflow": name, "version": 9})
    assert missing.status_code == 404 and error_code(missing) == "workflow_version_not_found"
    # the definition snapshot stays with the run whatever comes after
    assert api.get(f"/runs/{older['id']}/definition").json()["version"] == 1
    renamed = api.patch(f"/workflows/{name}", json={"definition": flow(f"other-{unique}", tool, 1)})
    assert renamed.status_code == 400 and error_code(renamed) == "name_mismatch"
    patched = api.patch(f"/workflows/{name}", content=flow(name, tool, 4), headers={"content-type": "application/yaml"})
    assert patched.status_code == 200 and patched.json()["latest_version"] == 4
    assert api.delete(f"/workflows/{name}").status_code == 204
    gone = api.post("/runs", json={"workflow": name})
    assert gone.status_code == 404 and error_code(gone) == "workflow_not_found"
    assert api.get(f"/runs/{older['id']}/definition").status_code == 200  # kept for the runs


def test_list_search_and_folders(api: httpx.Client, unique: str) -> None:
    tool = f"lst-{unique}"
    deploy(api, tool, "def main(n: int):\n    return n\n")
    folder = api.post("/folders", json={"name": f"finance-{unique}"})
    assert folder.status_code == 201, folder.text
    folder_id = folder.json()["id"]
    assert api.post("/folders", json={"name": f"finance-{unique}"}).status_code == 409
    for i in range(3):
        saved = yaml_post(api, flow(f"ls-{unique}-{i}", tool, i), **({"folder_id": folder_id} if i < 2 else {}))
        assert saved.status_code == 201, saved.text
    block = yaml_post(api, f"name: blk-{unique}\nkind: block\nsteps:\n  - id: s\n    uses: {tool}\n    with: {{n: 1}}\n")
    assert block.json()["kind"] == "block"
    in_folder = api.get("/workflows", params={"folder_id": folder_id}).json()["items"]
    assert sorted(w["name"] for w in in_folder) == [f"ls-{unique}-0", f"ls-{unique}-1"]
    searched = api.get("/workflows", params={"search": f"ls-{unique}", "sort": "name", "order": "asc",
                                             "limit": 2}).json()
    assert [w["name"] for w in searched["items"]] == [f"ls-{unique}-0", f"ls-{unique}-1"]
    assert searched["next_cursor"], searched
    rest = api.get("/workflows", params={"search": f"ls-{unique}", "sort": "name", "order": "asc", "limit": 2,
                                         "cursor": searched["next_cursor"]}).json()
    assert [w["name"] for w in rest["items"]] == [f"ls-{unique}-2"]
    blocks = api.get("/workflows", params={"kind": "block", "name": f"blk-{unique}"}).json()["items"]
    assert [w["name"] for w in blocks] == [f"blk-{unique}"]
    busy = api.delete(f"/folders/{folder_id}")
    assert busy.status_code == 409 and error_code(busy) == "folder_not_empty"
    for i in range(2):
        moved = api.patch(f"/workflows/ls-{unique}-{i}", json={"folder_id": None})
        assert moved.status_code == 200 and moved.json()["folder_id"] is None
    assert api.delete(f"/folders/{folder_id}").status_code == 204
    bad = api.post("/workflows", json={"definition": flow(f"x-{unique}", tool, 1), "folder_id": "fld_nope"})
    assert bad.status_code == 400 and error_code(bad) == "folder_not_found"


def test_bad_definitions_are_refused_with_the_line(api: httpx.Client, unique: str) -> None:
    tool = f"val-{unique}"
    deploy(api, tool, "def main(n: int):\n    return n\n")
    cases = {
        "cycle": f"name: c-{unique}\nsteps:\n  - id: a\n    uses: {tool}\n    needs: b\n    with: {{n: 1}}\n"
                 f"  - id: b\n    uses: {tool}\n    needs: a\n    with: {{n: 1}}\n",
        "unknown_tool": f"name: u-{unique}\nsteps:\n  - id: a\n    uses: nope-{unique}\n",
        "undefined_reference": f"name: r-{unique}\nsteps:\n  - id: a\n    uses: {tool}\n"
                               f"    with: {{n: \"${{{{ inputs.missing }}}}\"}}\n",
        "schema_mismatch": f"name: s-{unique}\nsteps:\n  - id: a\n    uses: {tool}\n    with: {{n: seven}}\n",
        "unknown_step": f"name: k-{unique}\nsteps:\n  - id: a\n    uses: {tool}\n    needs: zzz\n    with: {{n: 1}}\n",
        "invalid_yaml": "name: [unclosed\n",
        "invalid_expression": f"name: e-{unique}\nsteps:\n  - id: a\n    uses: {tool}\n    with: {{n: \"${{{{ 1 + }}}}\"}}\n",
    }
    for code, text in cases.items():
        response = yaml_post(api, text)
        assert response.status_code == 400, (code, response.text)
        body = response.json()["error"]
        codes = [i["code"] for i in body["details"]["issues"]]
        assert code in codes, (code, body)
        issue = next(i for i in body["details"]["issues"] if i["code"] == code)
        assert issue["line"] is not None, (code, issue)
    assert api.get("/workflows", params={"search": unique}).json()["items"] == []  # nothing saved
    deep = f"d0-{unique}"
    yaml_post(api, f"name: {deep}\nkind: block\nsteps:\n  - id: a\n    uses: {tool}\n    with: {{n: 1}}\n")
    for level in range(1, 6):
        saved = yaml_post(api, f"name: d{level}-{unique}\nkind: block\nsteps:\n  - id: a\n"
                               f"    uses: block:d{level - 1}-{unique}\n")
        assert saved.status_code == 201, saved.text
    too_deep = yaml_post(api, f"name: d6-{unique}\nsteps:\n  - id: a\n    uses: block:d5-{unique}\n")
    assert too_deep.status_code == 400 and error_code(too_deep) == "nesting_too_deep", too_deep.text
    viewer = api.post("/tokens", json={"name": f"v-{unique}", "role": "viewer"}).json()["key"]
    refused = httpx.post(str(api.base_url).rstrip("/") + "/workflows", json={"definition": flow(f"v-{unique}", tool, 1)},
                         headers={"Authorization": f"Bearer {viewer}"})
    assert refused.status_code == 403


def test_file_inputs_and_idempotent_runs(api: httpx.Client, unique: str) -> None:
    tool, name = f"reader-{unique}", f"files-{unique}"
    deploy(api, tool, "def main(doc: str, label: str = ''):\n    return label + open(doc).read()\n")
    saved = yaml_post(api, f"""
name: {name}
inputs:
  type: object
  properties:
    doc: {{type: string, format: file}}
    label: {{type: string, default: ""}}
  required: [doc]
steps:
  - id: read
    uses: {tool}
    with:
      doc: ${{{{ inputs.doc }}}}
      label: ${{{{ inputs.label }}}}
outputs:
  text: ${{{{ steps.read.output }}}}
""")
    assert saved.status_code == 201, saved.text
    response = api.post("/runs", params={"wait": 30}, data={"payload": json.dumps({
        "workflow": name, "inputs": {"label": "got: "}})}, files={"doc": ("contract.txt", b"the contract")})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "succeeded" and run["output"] == {"text": "got: the contract"}, run
    assert run["input_files"] == ["doc"]
    missing = api.post("/runs", json={"workflow": name})
    assert missing.status_code == 400 and error_code(missing) == "invalid_inputs"
    stray = api.post("/runs", data={"payload": json.dumps({"workflow": name})},
                     files={"doc": ("a.txt", b"x"), "other": ("b.txt", b"y")})
    assert stray.status_code == 400 and error_code(stray) == "invalid_inputs"
    key = {"Idempotency-Key": f"wf-{unique}"}
    plain = f"plain-{unique}"
    deploy(api, f"one-{unique}", "def main():\n    return 1\n")
    yaml_post(api, f"name: {plain}\nsteps:\n  - id: s\n    uses: one-{unique}\n")
    a = api.post("/runs", json={"workflow": plain}, headers=key)
    b = api.post("/runs", json={"workflow": plain}, headers=key)
    assert a.status_code == 201 and b.status_code == 200 and a.json()["id"] == b.json()["id"]
    reused = api.post("/runs", json={"workflow": plain, "inputs": {"x": 1}}, headers=key)
    assert reused.status_code == 409 and error_code(reused) == "idempotency_key_reused"
    both = api.post("/runs", json={"workflow": plain, "tool": f"one-{unique}"})
    assert both.status_code == 400

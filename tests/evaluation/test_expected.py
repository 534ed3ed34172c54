"""Expected outputs and comparisons through the real server: copy a run's output and
artifacts, upload files, rename and delete them, compare later runs of the example (JSON
fields, text, CSV by key, binary), compare two runs, and every bad input refused."""

from __future__ import annotations

import httpx

from tests.compat.datagen_support import other_workspace_key
from tests.support.api import deploy, error_code, run
from tests.support.servers import Server

TOOL = """
from pathlib import Path
from runyard import context

def main(x: int = 1, label: str = "a"):
    out = Path(context.output_dir())
    (out / "report.txt").write_text(f"line one\\nvalue {x}\\nline three\\n")
    (out / "rows.csv").write_text(f"id,v\\n1,{x}\\n2,2\\n3,3\\n")
    (out / "blob.bin").write_bytes(bytes([x % 256]) * 10)
    return {"x": x, "label": label, "items": [x, 2, 3], "ratio": x / 3}
"""


def _key(api: httpx.Client, role: str, tools: list[str] | None = None) -> str:
    body: dict = {"name": f"eval-{role}", "role": role}
    if tools is not None:
        body["restrictions"] = {"tools": tools}
    r = api.post("/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()["key"]


def test_expected_from_a_run_and_comparison_of_later_runs(api: httpx.Client, unique: str) -> None:
    tool = f"ev-{unique}"
    deploy(api, tool, TOOL)
    first = run(api, tool, {"x": 1}, tags={"example_id": f"ex-{unique}"})
    assert first["status"] == "succeeded", first
    rid = first["id"]
    assert error_code(api.get(f"/runs/{rid}/expected")) == "expected_not_found"
    r = api.get(f"/runs/{rid}/comparison")
    assert r.status_code == 404 and error_code(r) == "expected_not_found"

    r = api.post(f"/runs/{rid}/expected", json={
        "copy_output": True, "artifacts": ["report.txt", "rows.csv", "blob.bin"],
        "options": {"numeric_tolerance": 0.01, "unordered_paths": ["$.items"], "key_columns": {"rows.csv": ["id"]}}})
    assert r.status_code == 201, r.text
    expected = r.json()
    assert expected["example_id"] == f"ex-{unique}" and expected["target_name"] == tool
    assert expected["output"] == first["output"] and expected["has_output"] is True
    assert [f["filename"] for f in expected["files"]] == ["blob.bin", "report.txt", "rows.csv"]
    assert api.get(f"/runs/{rid}/expected").json()["id"] == expected["id"]
    assert api.get(f"/runs/{rid}/expected/report.txt").content == b"line one\nvalue 1\nline three\n"

    same = api.get(f"/runs/{rid}/comparison").json()
    assert same["score"] == 1.0 and same["fields"] == [] and {f["kind"] for f in same["files"]} == {"equal"}
    assert same["rule"] and same["against"]["kind"] == "expected"

    # A later run of the same example (another input) is compared against the same record.
    later = run(api, tool, {"x": 5, "label": "a"}, tags={"example_id": f"ex-{unique}"})
    assert api.get(f"/runs/{later['id']}/expected").json()["id"] == expected["id"]
    cmp = api.get(f"/runs/{later['id']}/comparison").json()
    paths = {d["path"]: d for d in cmp["fields"]}
    assert paths["$.x"] == {"path": "$.x", "expected": 1, "actual": 5, "kind": "changed"}
    assert "$.ratio" in paths
    # items [1,2,3] vs [5,2,3] unordered: 1 missing, 5 unexpected
    assert {(d["path"], d["kind"]) for d in cmp["fields"] if d["path"].startswith("$.items")} == {
        ("$.items[0]", "missing"), ("$.items[0]", "unexpected")}
    files = {f["filename"]: f for f in cmp["files"]}
    assert files["report.txt"]["kind"] == "text" and "+value 5" in files["report.txt"]["diff"]
    assert files["blob.bin"]["kind"] == "binary" and files["blob.bin"]["score"] == 0.0
    table = files["rows.csv"]
    assert table["kind"] == "table", table
    assert table["table"]["changed"] == 1 and table["table"]["matched"] == 2
    assert table["table"]["examples"]["changed"][0]["key"] == {"id": "1"}
    assert 0 < cmp["score"] < 1

    # Within tolerance: ratio 1/3 vs 1.0/3+tiny is equal; another run of x=1 scores 1.
    again = run(api, tool, {"x": 1}, tags={"example_id": f"ex-{unique}"})
    assert api.get(f"/runs/{again['id']}/comparison").json()["score"] == 1.0

    # Compare any two: this run against another run, or against a value.
    two = api.post(f"/runs/{later['id']}/compare", json={"run_id": rid}).json()
    assert two["against"] == {"kind": "run", "run_id": rid} and two["score"] < 1
    val = api.post(f"/runs/{rid}/compare", json={"expected": {"x": 1, "label": "a", "items": [1, 2, 3],
                                                               "ratio": 0.3333}, "options": {"numeric_tolerance": 0.001}})
    assert val.status_code == 200, val.text
    assert val.json()["score"] == 1.0 and val.json()["against"] == {"kind": "value"}
    assert error_code(api.post(f"/runs/{rid}/compare", json={})) == "validation_error"
    assert error_code(api.post(f"/runs/{rid}/compare", json={"run_id": "run_nope"})) == "run_not_found"


def test_upload_rename_delete_and_bad_names(api: httpx.Client, unique: str, server: Server) -> None:
    tool = f"evu-{unique}"
    deploy(api, tool, TOOL)
    untagged = run(api, tool, {"x": 2})
    rid = untagged["id"]
    r = api.post(f"/runs/{rid}/expected", files=[("file", ("report.txt", b"line one\nvalue 2\nline three\n")),
                                                 ("file", ("notes.md", b"# notes\n"))],
                 data={"payload": '{"output": {"x": 2}}'})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["example_id"] == rid  # no example_id: keyed by the run's own id
    assert body["output"] == {"x": 2} and [f["filename"] for f in body["files"]] == ["notes.md", "report.txt"]
    # Updating replaces a file of the same name and keeps the others.
    r = api.post(f"/runs/{rid}/expected", files={"file": ("notes.md", b"# notes v2\n")})
    assert r.status_code == 200, r.text
    assert api.get(f"/runs/{rid}/expected/notes.md").content == b"# notes v2\n"

    r = api.patch(f"/runs/{rid}/expected/notes.md", json={"filename": "renamed.md"})
    assert r.status_code == 200, r.text
    assert [f["filename"] for f in r.json()["files"]] == ["renamed.md", "report.txt"]
    assert error_code(api.get(f"/runs/{rid}/expected/notes.md")) == "expected_file_not_found"
    assert error_code(api.patch(f"/runs/{rid}/expected/renamed.md", json={"filename": "report.txt"})) \
        == "expected_file_exists"
    assert error_code(api.patch(f"/runs/{rid}/expected/renamed.md", json={"filename": "a/b"})) == "invalid_filename"
    assert api.delete(f"/runs/{rid}/expected/renamed.md").status_code == 204
    assert error_code(api.delete(f"/runs/{rid}/expected/renamed.md")) == "expected_file_not_found"

    # Paths that try to leave the file name: 400, never another resource.
    raw = httpx.Client(base_url=server.base_url, headers=dict(api.headers), timeout=30)
    for path in (f"/api/v1/runs/{rid}/expected/..%2Freport.txt", f"/api/v1/runs/{rid}/expected/a%2Fb",
                 f"/api/v1/runs/{rid}/expected/sub/report.txt", f"/api/v1/runs/{rid}/expected/%2E%2E%2Fx"):
        for method in ("GET", "DELETE", "PATCH"):
            kwargs = {"json": {"filename": "x"}} if method == "PATCH" else {}
            resp = raw.request(method, httpx.URL(server.base_url + path), **kwargs)
            assert resp.status_code in (400, 404), (method, path, resp.status_code, resp.text)
            if resp.status_code == 404:
                assert error_code(resp) != "expected_file_not_found" or "report" not in path
            assert b"line one" not in resp.content
    assert error_code(raw.get(httpx.URL(server.base_url + f"/api/v1/runs/{rid}/expected/a%2Fb"))) \
        == "invalid_filename"
    raw.close()
    assert error_code(api.post(f"/runs/{rid}/expected", files={"file": ("../evil.txt", b"x")})) == "invalid_filename"
    assert error_code(api.post(f"/runs/{rid}/expected", json={})) == "validation_error"
    assert error_code(api.post(f"/runs/{rid}/expected", json={"artifacts": ["no-such.txt"]})) == "artifact_not_found"
    assert error_code(api.post(f"/runs/{rid}/expected", json={"copy_output": True, "output": 1})) \
        == "validation_error"
    assert error_code(api.post(f"/runs/{rid}/expected", json={"options": {"numeric_tolerance": -1}})) \
        == "validation_error"
    # Nothing of the refused requests was kept.
    assert [f["filename"] for f in api.get(f"/runs/{rid}/expected").json()["files"]] == ["report.txt"]


def test_expected_file_size_limit(api: httpx.Client, unique: str) -> None:
    tool = f"evl-{unique}"
    deploy(api, tool, TOOL)
    rid = run(api, tool, {"x": 3})["id"]
    big = b"x" * (64 * 1024 * 1024 + 1)
    r = api.post(f"/runs/{rid}/expected", files={"file": ("big.bin", big)}, timeout=120)
    assert r.status_code == 413 and error_code(r) == "expected_file_too_large"
    assert error_code(api.get(f"/runs/{rid}/expected")) == "expected_not_found"  # nothing kept


def test_who_may_read_and_write(api: httpx.Client, unique: str, server: Server) -> None:
    tool, other = f"eva-{unique}", f"evb-{unique}"
    deploy(api, tool, TOOL)
    deploy(api, other, TOOL)
    rid = run(api, tool, {"x": 1})["id"]
    hidden = run(api, other, {"x": 1})["id"]
    for r_id in (rid, hidden):
        assert api.post(f"/runs/{r_id}/expected", json={"copy_output": True, "artifacts": ["report.txt"]}
                        ).status_code == 201
    with server.client(_key(api, "viewer")) as viewer:
        assert viewer.get(f"/runs/{rid}/expected").status_code == 200
        assert viewer.get(f"/runs/{rid}/comparison").status_code == 200
        assert viewer.get(f"/runs/{rid}/expected/report.txt").status_code == 200
        for resp in (viewer.post(f"/runs/{rid}/expected", json={"copy_output": True}),
                     viewer.patch(f"/runs/{rid}/expected/report.txt", json={"filename": "x.txt"}),
                     viewer.delete(f"/runs/{rid}/expected/report.txt")):
            assert resp.status_code == 403 and error_code(resp) == "insufficient_role"
    with server.client(_key(api, "member", [tool])) as restricted:
        assert restricted.get(f"/runs/{rid}/expected").status_code == 200
        assert restricted.post(f"/runs/{rid}/expected", json={"copy_output": True}).status_code == 200
        for resp in (restricted.get(f"/runs/{hidden}/expected"), restricted.get(f"/runs/{hidden}/comparison"),
                     restricted.get(f"/runs/{hidden}/expected/report.txt"),
                     restricted.post(f"/runs/{rid}/compare", json={"run_id": hidden}),
                     restricted.delete(f"/runs/{hidden}/expected/report.txt")):
            assert resp.status_code == 404 and error_code(resp) == "run_not_found"
    with server.client(other_workspace_key(server)) as stranger:
        for resp in (stranger.get(f"/runs/{rid}/expected"), stranger.get(f"/runs/{rid}/comparison"),
                     stranger.get(f"/runs/{rid}/expected/report.txt"),
                     stranger.post(f"/runs/{rid}/expected", json={"copy_output": True}),
                     stranger.delete(f"/runs/{rid}/expected/report.txt")):
            assert resp.status_code == 404 and error_code(resp) == "run_not_found"
    assert [f["filename"] for f in api.get(f"/runs/{rid}/expected").json()["files"]] == ["report.txt"]
    with httpx.Client(base_url=server.api, timeout=30) as anonymous:
        assert anonymous.get(f"/runs/{rid}/expected").status_code == 401

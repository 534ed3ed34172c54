"""Deploying, versioning and reading tools through the real server."""

from __future__ import annotations

import io
import json
import zipfile

from tests.support.api import deploy, error_code, run

ADD = """
def main(a: int, b: int = 2) -> int:
    '''Add two numbers.

    Args:
        a: the first number
        b: the second number
    '''
    return a + b
"""


def test_deploy_run_version_round_trip(api, unique):
    name = f"add-{unique}"
    tool = deploy(api, name, ADD)
    assert tool["version"] == 1 and tool["name"] == name and tool["id"].startswith("tool_")
    schema = tool["input_schema"]
    assert schema["required"] == ["a"]
    assert schema["properties"]["a"]["type"] == "integer"
    assert schema["properties"]["b"]["default"] == 2
    assert "first number" in schema["properties"]["a"].get("description", "")
    assert run(api, name, {"a": 40})["output"] == 42

    patched = api.patch(f"/tools/{name}", json={"code": ADD.replace("a + b", "a * b")})
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert run(api, name, {"a": 3, "b": 5})["output"] == 15
    assert run(api, name, {"a": 3, "b": 5}, version=1)["output"] == 8

    # Description/visibility only: no new version; identical code: no new version.
    assert api.patch(f"/tools/{name}", json={"description": "adds"}).json()["version"] == 2
    assert api.post("/tools", json={"name": name, "code": ADD.replace("a + b", "a * b")}).json()["version"] == 2
    assert api.patch(f"/tools/{name}", json={"timeout_s": 30}).json()["version"] == 3

    versions = api.get(f"/tools/{name}/versions").json()["items"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    v1 = api.get(f"/tools/{tool['id']}/versions/1").json()
    assert v1["version"] == 1 and v1["code_sha256"]
    assert api.get(f"/tools/{name}").json()["description"] == "adds"

    assert api.delete(f"/tools/{name}").status_code == 204
    assert error_code(api.get(f"/tools/{name}")) == "tool_not_found"
    # A deleted tool's name can be used again.
    assert deploy(api, name, ADD)["version"] == 1


def test_signature_inference(api, unique):
    code = '''
from typing import Literal, Optional
from pydantic import BaseModel

class Point(BaseModel):
    x: float
    y: float = 0.0

def main(n: int, ratio: float, label: str, flag: bool, items: list[int], meta: dict[str, str],
         mode: Literal["fast", "slow"] = "fast", note: Optional[str] = None, p: Point | None = None,
         anything=None):
    return {"n": n, "mode": mode, "p": p.x if p else None}
'''
    tool = deploy(api, f"infer-{unique}", code)
    props = tool["input_schema"]["properties"]
    assert props["n"]["type"] == "integer"
    assert props["ratio"]["type"] == "number"
    assert props["label"]["type"] == "string"
    assert props["flag"]["type"] == "boolean"
    assert props["items"]["type"] == "array" and props["items"]["items"]["type"] == "integer"
    assert props["meta"]["type"] == "object"
    assert props["mode"]["enum"] == ["fast", "slow"] and props["mode"]["default"] == "fast"
    assert "note" not in tool["input_schema"]["required"]
    assert set(tool["input_schema"]["required"]) == {"n", "ratio", "label", "flag", "items", "meta"}
    result = run(api, f"infer-{unique}", {"n": 1, "ratio": 0.5, "label": "x", "flag": True, "items": [1],
                                           "meta": {}, "p": {"x": 2.5}})
    assert result["status"] == "succeeded", result
    assert result["output"] == {"n": 1, "mode": "fast", "p": 2.5}
    bad = api.post("/runs", json={"tool": f"infer-{unique}", "inputs": {"n": "x", "mode": "medium"}})
    assert bad.status_code == 400
    fields = {e["field"] for e in bad.json()["error"]["details"]["errors"]}
    assert {"n", "mode", "ratio", "label"} <= fields


COUNTER = """
import os

calls = 0

def main(fail: bool = False) -> dict:
    global calls
    calls += 1
    if fail:
        raise ValueError("boom")
    return {"pid": os.getpid(), "calls": calls}
"""


def test_reuse_process_shares_a_process_between_runs_of_a_version(api, unique):
    name = f"counter-{unique}"
    tool = deploy(api, name, COUNTER)
    assert tool["reuse_process"] is False
    fresh = [run(api, name, {})["output"] for _ in range(2)]
    assert [r["calls"] for r in fresh] == [1, 1] and fresh[0]["pid"] != fresh[1]["pid"]

    patched = api.patch(f"/tools/{name}", json={"reuse_process": True})
    assert patched.status_code == 200 and patched.json()["version"] == 2 and patched.json()["reuse_process"] is True
    reused = [run(api, name, {})["output"] for _ in range(3)]
    assert [r["calls"] for r in reused] == [1, 2, 3] and len({r["pid"] for r in reused}) == 1
    # A failed run retires its process; version 1 never shares one.
    assert run(api, name, {"fail": True})["status"] == "failed"
    assert run(api, name, {})["output"]["calls"] == 1
    assert run(api, name, {}, version=1)["output"]["calls"] == 1
    assert api.get(f"/tools/{name}/versions/1").json()["reuse_process"] is False

    r = api.patch(f"/tools/{name}", json={"reuse_process": "yes"})
    assert r.status_code == 400 and error_code(r) == "validation_error"
    assert r.json()["error"]["details"]["field"] == "reuse_process"
    assert api.get(f"/tools/{name}").json()["version"] == 2


def test_deploy_rejections(api, unique):
    r = api.post("/tools", json={"name": f"bad-{unique}", "code": "def main(:\n  pass\n"})
    assert r.status_code == 400 and error_code(r) == "invalid_source"
    assert r.json()["error"]["details"]["line"] == 1
    r = api.post("/tools", json={"name": f"bad-{unique}", "code": "x = 1\n\n\ndef other():\n    pass\n"})
    assert error_code(r) == "entrypoint_not_found"
    r = api.post("/tools", json={"name": f"bad-{unique}", "code": "def main():\n    pass\n",
                                 "input_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}})
    assert error_code(r) == "invalid_input_schema"
    r = api.post("/tools", json={"name": "Bad Name!", "code": "def main():\n    pass\n"})
    assert error_code(r) == "invalid_tool_name"
    r = api.post("/tools", json={"name": f"bad-{unique}", "code": "def main():\n    pass\n", "bogus": 1})
    assert error_code(r) == "validation_error" and r.json()["error"]["details"]["fields"] == ["bogus"]
    r = api.post("/tools", content=b"not json", headers={"content-type": "application/json"})
    assert error_code(r) == "invalid_json"
    assert error_code(api.get("/tools/nope-nope")) == "tool_not_found"
    assert api.get("/tools", params={"search": f"bad-{unique}"}).json()["items"] == []


def test_upload_py_and_zip(api, unique):
    r = api.post("/tools", data={"name": f"up-{unique}", "entrypoint": "run"},
                 files={"file": ("greet.py", b"def run(who: str) -> str:\n    return 'hi ' + who\n")})
    assert r.status_code == 201, r.text
    assert run(api, f"up-{unique}", {"who": "ann"})["output"] == "hi ann"

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/helpers.py", "def double(x):\n    return 2 * x\n")
        zf.writestr("pkg/app.py", "from pkg.helpers import double\n\ndef go(x: int) -> int:\n    return double(x)\n")
    r = api.post("/tools", data={"config": json.dumps({"name": f"zip-{unique}", "entrypoint": "pkg.app:go"})},
                 files={"file": ("bundle.zip", buf.getvalue())})
    assert r.status_code == 201, r.text
    assert r.json()["entrypoint"] == "pkg.app:go"
    assert run(api, f"zip-{unique}", {"x": 21})["output"] == 42

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.py", "def main():\n    pass\n")
    r = api.post("/tools", data={"name": f"evil-{unique}"}, files={"file": ("e.zip", evil.getvalue())})
    assert error_code(r) == "invalid_source"


def test_list_search_sort_paginate(api, unique):
    for i in range(5):
        deploy(api, f"pg-{unique}-{i}", "def main():\n    return 1\n")
    seen = []
    cursor = None
    while True:
        params = {"search": f"pg-{unique}", "sort": "name", "order": "asc", "limit": 2, "include_total": True}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/tools", params=params).json()
        assert page["total"] == 5
        seen += [t["name"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"pg-{unique}-{i}" for i in range(5)]
    assert error_code(api.get("/tools", params={"sort": "size"})) == "validation_error"
    assert error_code(api.get("/tools", params={"cursor": "%%%"})) == "invalid_cursor"
    assert error_code(api.get("/tools", params={"limit": 0})) == "invalid_limit"

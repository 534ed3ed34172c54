"""Workspace files in runs (issue 18): a tool declaring ``files`` reads them with
``context.files.open(name)``; a name it does not declare is refused, and the run cannot
read the blob store's other files."""

from __future__ import annotations

import httpx

from tests.support.api import deploy, error_code, run

READER = """
from runyard import context

def main(name: str) -> dict:
    with context.files.open(name) as fh:
        data = fh.read()
    return {"text": data.decode(), "declared": context.files.names()}
"""

SNOOPER = """
import os
from runyard import context

def main() -> dict:
    path = context.files.path("mine.txt")
    store = os.path.dirname(path)
    try:
        listing = os.listdir(store)
    except OSError as exc:
        listing = type(exc).__name__
    try:
        other = open(os.path.join(store, os.listdir(store)[0]), "rb").read()
    except Exception as exc:
        other = type(exc).__name__
    try:
        open(path, "ab").write(b"x")
        wrote = True
    except OSError:
        wrote = False
    return {"listing": listing if isinstance(listing, str) else "listed", "other": str(other)[:40],
            "wrote": wrote}
"""


def _put(api: httpx.Client, name: str, data: bytes) -> None:
    response = api.post("/workspace/files", params={"overwrite": "true"}, data={"name": name},
                        files={"file": (name, data, "text/plain")})
    assert response.status_code == 201, response.text


def test_a_run_reads_a_declared_file_and_is_refused_an_undeclared_one(api, unique):
    _put(api, f"lookup-{unique}.txt", b"alpha,beta")
    _put(api, f"secret-{unique}.txt", b"not yours")
    tool = deploy(api, f"reader-{unique}", READER, files=[f"lookup-{unique}.txt", f"missing-{unique}.txt"])
    assert tool["files"] == [f"lookup-{unique}.txt", f"missing-{unique}.txt"]

    done = run(api, tool["name"], {"name": f"lookup-{unique}.txt"})
    assert done["status"] == "succeeded", done
    assert done["output"] == {"text": "alpha,beta", "declared": [f"lookup-{unique}.txt", f"missing-{unique}.txt"]}

    refused = run(api, tool["name"], {"name": f"secret-{unique}.txt"})
    assert refused["status"] == "failed"
    assert refused["error"]["type"] == "FileNotDeclared"
    assert "not declared by this tool" in refused["error"]["message"]

    absent = run(api, tool["name"], {"name": f"missing-{unique}.txt"})
    assert absent["status"] == "failed" and absent["error"]["type"] == "FileNotFoundError"

    _put(api, f"lookup-{unique}.txt", b"gamma")  # a replaced file: the next run reads the new bytes
    assert run(api, tool["name"], {"name": f"lookup-{unique}.txt"})["output"]["text"] == "gamma"


def test_a_run_sees_only_its_declared_files_and_cannot_change_them(api, unique):
    _put(api, "mine.txt", b"mine")
    _put(api, f"theirs-{unique}.txt", b"theirs")
    tool = deploy(api, f"snooper-{unique}", SNOOPER, files=["mine.txt"])
    done = run(api, tool["name"])
    assert done["status"] == "succeeded", done
    assert done["output"]["listing"] == "PermissionError"  # the store's directory is not readable
    assert done["output"]["other"] in ("PermissionError", "IndexError")
    assert done["output"]["wrote"] is False
    assert api.get("/workspace/files/mine.txt").content == b"mine"


def test_declared_names_are_checked_at_deploy(api, unique):
    bad = api.post("/tools", json={"name": f"bad-{unique}", "code": "def main():\n    return 1\n",
                                   "files": ["../etc/passwd"]})
    assert bad.status_code == 400 and error_code(bad) == "invalid_file_name"
    assert bad.json()["error"]["details"]["field"] == "files"


def test_a_restricted_key_cannot_declare_new_files(server, api, unique):
    tool = deploy(api, f"scoped-{unique}", "def main():\n    return 1\n", files=[f"a-{unique}.txt"])
    key = api.post("/tokens", json={"name": f"scoped-{unique}", "role": "member",
                                    "restrictions": {"tools": [tool["id"]]}}).json()["key"]
    with server.client(key) as scoped:
        same = scoped.patch(f"/tools/{tool['name']}", json={"files": [f"a-{unique}.txt"]})
        assert same.status_code == 200, same.text
        wider = scoped.patch(f"/tools/{tool['name']}", json={"files": [f"a-{unique}.txt", f"b-{unique}.txt"]})
        assert wider.status_code == 403 and error_code(wider) == "restricted"
        assert wider.json()["error"]["details"]["files"] == [f"b-{unique}.txt"]

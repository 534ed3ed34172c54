"""Workspace files over HTTP (issue 18): upload, list, download with Range and ETag,
overwrite, names that could escape, who may do what, and the storage quota."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from tests.support.api import error_code


def _put(api: httpx.Client, name: str | None, data: bytes, *, overwrite: bool = False,
         content_type: str = "text/csv", filename: str = "upload.bin") -> httpx.Response:
    fields = {"name": name} if name is not None else {}
    return api.post("/workspace/files", params={"overwrite": "true"} if overwrite else None, data=fields,
                    files={"file": (filename, data, content_type)})


def _token(api: httpx.Client, name: str, role: str, **restrictions: object) -> str:
    body: dict[str, object] = {"name": name, "role": role}
    if restrictions:
        body["restrictions"] = restrictions
    response = api.post("/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


def test_upload_list_download_and_delete(api, unique):
    data = b"id,name\n1,ada\n2,grace\n"
    created = _put(api, f"people-{unique}.csv", data)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["object"] == "workspace_file" and body["id"].startswith("wsf_")
    assert body["name"] == f"people-{unique}.csv" and body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["content_type"] == "text/csv"

    listed = api.get("/workspace/files", params={"prefix": f"people-{unique}", "include_total": "true"}).json()
    assert listed["total"] == 1 and [f["name"] for f in listed["items"]] == [f"people-{unique}.csv"]
    assert listed["items"][0]["sha256"] == body["sha256"] and listed["items"][0]["created_at"]

    got = api.get(f"/workspace/files/people-{unique}.csv")
    assert got.status_code == 200 and got.content == data
    assert got.headers["etag"] == f'"{body["sha256"]}"'
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert f'filename="people-{unique}.csv"' in got.headers["content-disposition"]

    assert api.delete(f"/workspace/files/people-{unique}.csv").status_code == 204
    gone = api.get(f"/workspace/files/people-{unique}.csv")
    assert gone.status_code == 404 and error_code(gone) == "file_not_found"
    assert error_code(api.delete(f"/workspace/files/people-{unique}.csv")) == "file_not_found"


def test_range_and_conditional_requests(api, unique):
    data = bytes(range(256)) * 40
    name = f"range-{unique}.bin"
    assert _put(api, name, data, content_type="application/octet-stream").status_code == 201
    part = api.get(f"/workspace/files/{name}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = api.get(f"/workspace/files/{name}", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = api.get(f"/workspace/files/{name}", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    etag = api.get(f"/workspace/files/{name}").headers["etag"]
    cached = api.get(f"/workspace/files/{name}", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    assert api.get(f"/workspace/files/{name}", headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    assert api.get(f"/workspace/files/{name}", headers={"If-None-Match": '"other"'}).status_code == 200


def test_overwrite_needs_consent(api, unique):
    name = f"report-{unique}.txt"
    first = _put(api, name, b"one", content_type="text/plain").json()
    again = _put(api, name, b"two", content_type="text/plain")
    assert again.status_code == 409 and error_code(again) == "file_exists"
    assert api.get(f"/workspace/files/{name}").content == b"one"
    replaced = _put(api, name, b"two!", content_type="text/plain", overwrite=True)
    assert replaced.status_code == 201, replaced.text
    view = replaced.json()
    assert view["id"] == first["id"] and view["size"] == 4 and view["sha256"] != first["sha256"]
    assert api.get(f"/workspace/files/{name}").content == b"two!"


@pytest.mark.parametrize("name", ["../escape.txt", "a/b.txt", "a\\b.txt", "nul\x00.txt", "bell\x07", "..",
                                  " padded", "x" * 256])
def test_names_that_could_escape_are_refused(api, server, name):
    before = _blob_files(server)
    response = _put(api, name, b"data")
    assert response.status_code == 400 and error_code(response) == "invalid_file_name", response.text
    assert _blob_files(server) == before  # the bytes it had received are gone


@pytest.mark.parametrize("path", ["..%2Fescape.txt", "a%2Fb", "nul%00.txt"])
def test_names_in_the_path_are_checked(api, path):
    response = api.get(f"/workspace/files/{path}")
    assert response.status_code == 400 and error_code(response) == "invalid_file_name"


def test_a_name_defaults_to_the_uploaded_file_name(api, unique):
    response = _put(api, None, b"{}", content_type="application/json", filename=f"conf-{unique}.json")
    assert response.status_code == 201 and response.json()["name"] == f"conf-{unique}.json"


def test_bad_forms(api):
    no_file = api.post("/workspace/files", data={"name": "x.txt"}, files={"other": ("x", b"1")})
    assert no_file.status_code == 400 and error_code(no_file) == "missing_file"
    not_a_form = api.post("/workspace/files", content=b"raw", headers={"Content-Type": "application/octet-stream"})
    assert not_a_form.status_code == 400 and error_code(not_a_form) == "invalid_multipart"
    truncated = api.post("/workspace/files", content=b'--b\r\nContent-Disposition: form-data; name="file"; '
                         b'filename="x"\r\n\r\npartial', headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert truncated.status_code == 400 and error_code(truncated) == "invalid_multipart"


def test_viewers_read_members_write_restricted_keys_reach_nothing(server, api, unique):
    name = f"shared-{unique}.txt"
    assert _put(api, name, b"hello", content_type="text/plain").status_code == 201
    with server.client(_token(api, f"viewer-{unique}", "viewer")) as viewer:
        assert viewer.get(f"/workspace/files/{name}").content == b"hello"
        assert name in [f["name"] for f in viewer.get("/workspace/files", params={"prefix": name}).json()["items"]]
        denied = _put(viewer, f"viewer-{unique}.txt", b"no")
        assert denied.status_code == 403 and error_code(denied) == "insufficient_role"
        refused = viewer.delete(f"/workspace/files/{name}")
        assert refused.status_code == 403 and error_code(refused) == "insufficient_role"
    with server.client(_token(api, f"member-{unique}", "member")) as member:
        assert _put(member, f"member-{unique}.txt", b"yes").status_code == 201
        assert member.delete(f"/workspace/files/member-{unique}.txt").status_code == 204
    tool = api.post("/tools", json={"name": f"t-{unique}", "code": "def main():\n    return 1\n"}).json()
    with server.client(_token(api, f"restricted-{unique}", "member", tools=[tool["id"]])) as restricted:
        for response in (restricted.get("/workspace/files"), restricted.get(f"/workspace/files/{name}"),
                         _put(restricted, f"r-{unique}.txt", b"x"), restricted.delete(f"/workspace/files/{name}")):
            assert response.status_code == 403 and error_code(response) == "restricted"
    assert api.get(f"/workspace/files/{name}").status_code == 200


def _blob_files(server) -> set[str]:
    root = Path(server.data_dir) / "blobs" / "workspace-files"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_storage_usage(api, unique):
    before = api.get("/workspace/storage").json()
    assert before["object"] == "storage_usage" and set(before["by_kind"]) == {"files", "datasets", "artifacts",
                                                                              "expected", "uploads"}
    assert _put(api, f"usage-{unique}.bin", os.urandom(1000)).status_code == 201
    after = api.get("/workspace/storage").json()
    assert after["by_kind"]["files"] == before["by_kind"]["files"] + 1000

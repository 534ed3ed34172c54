"""The storage quota across what a workspace keeps, and uploads/downloads that stream
(issue 18): a write past the quota is 413 ``storage_quota_exceeded`` and leaves nothing
behind; a 200 MB file goes up and down without the server holding it."""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import deploy, error_code, run
from tests.support.servers import PgDatabase, Server

QUOTA = 20_000


@pytest.fixture(scope="module")
def quota_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"quota-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_STORAGE_QUOTA_BYTES": str(QUOTA)})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


def _put(api: httpx.Client, name: str, data: bytes, *, overwrite: bool = False) -> httpx.Response:
    return api.post("/workspace/files", params={"overwrite": "true"} if overwrite else None, data={"name": name},
                    files={"file": (name, data, "application/octet-stream")})


def _stored(server: Server) -> list[str]:
    root = Path(server.data_dir) / "blobs" / "workspace-files"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_quota_counts_files_datasets_and_artifacts(quota_server):
    with quota_server.client() as api:
        assert _put(api, "a.bin", os.urandom(8_000)).status_code == 201
        blobs = _stored(quota_server)
        refused = _put(api, "b.bin", os.urandom(13_000))
        assert refused.status_code == 413 and error_code(refused) == "storage_quota_exceeded"
        details = refused.json()["error"]["details"]
        assert details["quota_bytes"] == QUOTA and details["used_bytes"] == 8_000
        assert _stored(quota_server) == blobs  # nothing left behind
        assert [f["name"] for f in api.get("/workspace/files").json()["items"]] == ["a.bin"]
        # Replacing a file counts its new size instead of the old one.
        assert _put(api, "a.bin", os.urandom(15_000), overwrite=True).status_code == 201
        too_big = _put(api, "a.bin", os.urandom(QUOTA + 1), overwrite=True)
        assert too_big.status_code == 413 and error_code(too_big) == "storage_quota_exceeded"
        assert api.get("/workspace/files/a.bin").headers["content-length"] == "15000"

        # Dataset ingestion counts against the same quota.
        api.post("/namespaces", json={"name": "q"})
        rows = api.post("/namespaces/q/datasets/d/rows", params={"create": "true"}, json=[{"x": "y" * 8_000}])
        assert rows.status_code == 413 and error_code(rows) == "storage_quota_exceeded"
        dataset = api.get("/namespaces/q/datasets/d")
        assert dataset.status_code == 404 or dataset.json()["rows"] == 0

        # A run whose artifacts would pass it fails, keeping none.
        deploy(api, "writer", """
            from runyard import context
            def main(size: int) -> int:
                context.artifact("out.bin", b"x" * size)
                return size
        """)
        failed = run(api, "writer", {"size": 10_000})
        assert failed["status"] == "failed" and failed["error"]["type"] == "storage_quota_exceeded"
        assert failed["output"] is None
        assert api.get(f"/runs/{failed['id']}/artifacts").json()["items"] == []
        kept = run(api, "writer", {"size": 100})
        assert kept["status"] == "succeeded"

        # Expected outputs' files count too: one that would pass the quota is refused, whole.
        over = api.post(f"/runs/{kept['id']}/expected", files={"file": ("big.bin", b"e" * 10_000)})
        assert over.status_code == 413 and error_code(over) == "storage_quota_exceeded", over.text
        assert api.get(f"/runs/{kept['id']}/expected").status_code == 404
        assert api.post(f"/runs/{kept['id']}/expected", json={"artifacts": ["out.bin"]}).status_code == 201
        blobs_now = _stored(quota_server)
        usage = api.get("/workspace/storage").json()
        assert usage["quota_bytes"] == QUOTA and usage["by_kind"]["files"] == 15_000
        assert usage["by_kind"]["artifacts"] == 100 and usage["by_kind"]["expected"] == 100
        assert usage["used_bytes"] == sum(usage["by_kind"].values())

        # A body that cannot fit is refused from its Content-Length, before it is read.
        early = _put(api, "huge.bin", os.urandom(3 * 1024 * 1024))
        assert early.status_code == 413 and error_code(early) == "storage_quota_exceeded"
        assert _stored(quota_server) == blobs_now

        # Deleting frees the space.
        assert api.delete("/workspace/files/a.bin").status_code == 204
        assert _put(api, "b.bin", os.urandom(13_000)).status_code == 201

        # A file ingestion small when queued (gzip) whose Parquet parts would pass the quota
        # fails before committing them.
        packed = gzip.compress(b"a\n" + b"1\n" * 200_000)
        assert len(packed) < 2_000
        queued = api.post("/namespaces/q/datasets/packed/files", files={"file": ("rows.csv.gz", packed)})
        assert queued.status_code == 202, queued.text
        done = api.get(f"/ingestions/{queued.json()['id']}/wait", params={"timeout": 120}).json()
        assert done["status"] == "failed" and done["status_message"].startswith("storage_quota_exceeded")
        assert api.get("/workspace/storage").json()["by_kind"]["datasets"] == 0


def _rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_200_mb_file_streams_up_and_down(server, api, unique, tmp_path):
    size = 200 * 1024 * 1024
    boundary = secrets.token_hex(16)
    digest = hashlib.sha256()
    chunk = os.urandom(1 << 20)

    def body() -> Iterator[bytes]:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig-{unique}.bin\r\n'
               f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        for i in range(size // len(chunk)):
            piece = chunk[:1] + i.to_bytes(4, "big") + chunk[5:]  # no two MiB alike
            digest.update(piece)
            yield piece
        yield f"\r\n--{boundary}--\r\n".encode()

    assert server.proc is not None
    before = _rss_peak_kb(server.proc.pid)
    with httpx.Client(base_url=server.api, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=300) as client:
        uploaded = client.post("/workspace/files", content=body(),
                               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["size"] == size and uploaded.json()["sha256"] == digest.hexdigest()
        received = hashlib.sha256()
        count = 0
        with client.stream("GET", f"/workspace/files/big-{unique}.bin") as response:
            assert response.status_code == 200
            for piece in response.iter_bytes():
                received.update(piece)
                count += len(piece)
        assert count == size and received.hexdigest() == digest.hexdigest()
    grew_mb = (_rss_peak_kb(server.proc.pid) - before) / 1024
    assert grew_mb < 64, f"the server's peak memory grew by {grew_mb:.0f} MB for a 200 MB file"
    assert api.delete(f"/workspace/files/big-{unique}.bin").status_code == 204

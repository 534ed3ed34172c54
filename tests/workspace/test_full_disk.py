"""A full disk: the upload's part is refused with 507, the server stays up, nothing is ingested.

The data dir lives on a small tmpfs of the test's own (mounting needs root; elsewhere skipped)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import error_code
from tests.support.servers import Server


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("a disk small enough to fill needs a tmpfs mount, which needs root (CI runs as root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_refuses_the_part_and_changes_nothing(small_disk: Path) -> None:
    srv = Server(data_dir=small_disk / "data", slots=1)
    srv.start()
    try:
        with srv.client(timeout=60) as api:
            api.post("/namespaces", json={"name": "full"})
            api.post("/namespaces/full/datasets/d/rows", params={"create": "true"}, json=[{"a": 1}])
            size = 80 * 1024 * 1024  # more than the disk holds
            upload = api.post("/uploads", json={"filename": "big.csv", "size": size,
                                               "part_size": 40 * 1024 * 1024}).json()
            statuses = []
            with httpx.Client(timeout=120) as anonymous:
                for part in upload["parts"]:
                    r = anonymous.put(part["url"], content=b"1\n" * (part["size"] // 2))
                    statuses.append((r.status_code, error_code(r) if r.status_code >= 400 else None))
            assert (507, "insufficient_storage") in statuses, statuses
            assert api.delete(f"/uploads/{upload['id']}").status_code == 204  # the space comes back
            assert api.get("/namespaces/full/datasets/d").json()["rows"] == 1  # the snapshot as it was
            assert api.post("/namespaces/full/datasets/d/rows", json=[{"a": 2}]).status_code == 201
    finally:
        srv.stop()

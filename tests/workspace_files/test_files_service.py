"""The workspace-file service in-process: names, retiring replaced bytes, abandoned uploads."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.storage import StorageQuota
from runyard.services.workspace_files import WorkspaceFileService, check_file_name
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.migrate import upgrade
from runyard.store.tables_data import retired_blobs

ADMIN = Principal(token_id="tok_x", workspace_id="ws_test", role="admin", user_id="usr_x")


@pytest.fixture
def service(tmp_path: Path) -> WorkspaceFileService:
    db = Database(f"sqlite:///{tmp_path / 'runyard.db'}")
    upgrade(db.engine)
    return WorkspaceFileService(db, BlobStore(tmp_path / "blobs"), StorageQuota(db, 0))


def _store(service: WorkspaceFileService, name: str, data: bytes, overwrite: bool = False) -> dict:
    sink = service.begin_upload(ADMIN)
    for piece in iter(lambda stream=io.BytesIO(data): stream.read(3), b""):
        sink.write(piece)
    return service.commit(ADMIN, sink, name=name, overwrite=overwrite)


@pytest.mark.parametrize("name", ["report.csv", "Ünïcode name.txt", "a.b.c", "x" * 255, ".hidden"])
def test_good_names(name):
    assert check_file_name(name) == name


@pytest.mark.parametrize("name", ["", "..", ".", "a/../b", "../x", "a/b", "a\\b", "a\x00b", "a\nb", "a\x7fb",
                                  " x", "x ", "x" * 256, None, 3])
def test_bad_names(name):
    with pytest.raises(ValidationFailed) as refused:
        check_file_name(name)
    assert refused.value.code == "invalid_file_name"


def test_replacing_and_deleting_retire_the_old_bytes(service):
    first = _store(service, "f.txt", b"first")
    old = service.blobs.path(f"workspace-files/ws_test/{_blob_key(service, 'f.txt')}")
    assert old.read_bytes() == b"first"
    _store(service, "f.txt", b"second", overwrite=True)
    assert old.read_bytes() == b"first"  # still readable by whoever looked it up before
    with service.db.read() as conn:
        retired = set(conn.execute(sa.select(retired_blobs.c.key)).scalars())
    assert f"workspace-files/ws_test/{old.name}" in retired
    assert service.get(ADMIN, "f.txt")["id"] == first["id"]
    assert Path(service.get(ADMIN, "f.txt")["path"]).read_bytes() == b"second"
    current = Path(service.get(ADMIN, "f.txt")["path"])
    service.delete(ADMIN, "f.txt")
    with service.db.read() as conn:
        assert f"workspace-files/ws_test/{current.name}" in set(conn.execute(sa.select(retired_blobs.c.key)).scalars())


def test_a_refused_commit_leaves_nothing(service):
    sink = service.begin_upload(ADMIN)
    sink.write(b"bytes")
    with pytest.raises(ValidationFailed):
        service.commit(ADMIN, sink, name="../x")
    assert not sink.path.exists()
    assert list(service.blobs.path("workspace-files/ws_test").iterdir()) == []


def test_abandoned_uploads_are_swept(service):
    abandoned = service.begin_upload(ADMIN)
    abandoned.write(b"half")
    abandoned.close()
    old = time.time() - 2 * 24 * 3600
    os.utime(abandoned.path, (old, old))
    fresh = service.begin_upload(ADMIN)
    fresh.write(b"in progress")
    assert service.sweep_abandoned() == 1
    assert not abandoned.path.exists() and fresh.path.exists()
    assert service.sweep_abandoned() == 0  # at most once an hour
    fresh.abort()


def _blob_key(service: WorkspaceFileService, name: str) -> str:
    return Path(service.get(ADMIN, name)["path"]).name

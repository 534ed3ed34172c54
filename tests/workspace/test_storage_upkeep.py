"""Compaction of small parts and the sweep of retired ones, in-process on a real store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from runyard.config import Settings
from runyard.data.parts import read_table
from runyard.services.access import Principal
from runyard.wiring import Platform


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Platform, Principal]]:
    platform = Platform(Settings(data_dir=tmp_path / "data"))
    key, _ = platform.bootstrap_admin_key()
    try:
        yield platform, platform.tokens.authenticate(key)
    finally:
        platform.close()


def test_small_parts_are_compacted_and_replaced_parts_swept_later(node: tuple[Platform, Principal]) -> None:
    platform, admin = node
    platform.namespaces.create(admin, name="up")
    for batch in range(10):
        platform.datasets.ingest_rows(admin, "up", "d", [{"n": batch * 10 + i} for i in range(10)], create=True)
    dataset = platform.datasets.get(admin, "up", "d")
    with platform.db.read() as conn:
        row = platform.datasets.resolve(conn, admin, "up", "d", "read")[1]
    before = platform.datasets.snapshot_of(row, "up")
    assert len(before.manifest.parts) == 10 and dataset["rows"] == 100

    assert dataset["id"] in platform.datasets.compaction_candidates()
    assert platform.datasets.compact(dataset["id"]) == 10
    with platform.db.read() as conn:
        row = platform.datasets.resolve(conn, admin, "up", "d", "read")[1]
    after = platform.datasets.snapshot_of(row, "up")
    assert len(after.manifest.parts) == 1
    old = read_table(before.paths, before.manifest.columns, include_metadata=True)
    new = read_table(after.paths, after.manifest.columns, include_metadata=True)
    assert new.column("_id").to_pylist() == old.column("_id").to_pylist()  # the same rows, the same ids
    assert new.column("n").to_pylist() == list(range(100))

    # The replaced parts stay while a query or cursor could still read them, then go.
    assert all(Path(p).exists() for p in before.paths)
    assert platform.datasets.sweep() == 0
    platform.datasets.retention = timedelta(0)
    assert platform.datasets.sweep() >= 10
    assert not any(Path(p).exists() for p in before.paths) and all(Path(p).exists() for p in after.paths)
    assert platform.datasets.get(admin, "up", "d")["rows"] == 100

"""The parsing and query jobs run in the run sandbox: they read only the files they are given."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.config import Settings
from runyard.services.sandboxed import JobFailed
from runyard.wiring import Platform

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the sandbox is made of Linux kernel features (Landlock, seccomp, cgroups); other systems have none")

COLUMNS = [{"name": "a", "type": "string"}]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    node = Platform(Settings(data_dir=tmp_path / "data"))
    node.bootstrap_admin_key()
    try:
        yield node
    finally:
        node.close()


def _ingest(platform: Platform, source: Path, read_paths: list[str]) -> dict:
    job = platform.jobs.run("ingest_file", {
        "source": str(source), "filename": "x.csv", "options": {"format": "csv"}, "columns": COLUMNS,
        "first_id": 1, "ingestion_id": "ing_test", "ingested_at": "2026-01-01T00:00:00+00:00"},
        read_paths=read_paths, memory_mb=1024, timeout_s=60)
    try:
        return job.value
    finally:
        job.cleanup()


def test_a_parse_job_reads_the_file_it_is_given(platform: Platform, tmp_path: Path) -> None:
    given = tmp_path / "given.csv"
    given.write_text("a\nx\ny\n")
    assert _ingest(platform, given, [str(given)])["rows"] == 2


def test_a_parse_job_cannot_read_the_data_dir_or_other_files(platform: Platform, tmp_path: Path) -> None:
    if platform.sandbox_config().mode == "off":
        pytest.skip("the sandbox is turned off (RUNYARD_SANDBOX=off): there is no confinement to test")
    other = tmp_path / "other.csv"
    other.write_text("a\nsecret\n")
    for target in (platform.settings.data_dir / "admin-key", platform.settings.data_dir / "signing-key", other):
        try:
            outcome = _ingest(platform, target, [])  # given nothing: may read nothing
        except JobFailed as exc:
            assert "Permission denied" in exc.message or "denied" in exc.message.lower(), exc.message
        else:
            assert "error" in outcome and "rows" not in outcome, (target, outcome)

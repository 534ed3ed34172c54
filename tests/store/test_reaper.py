"""The reaper takes runs from workers that are gone, never from live ones that are slow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from runyard.config import Settings
from runyard.ids import new_id
from runyard.platform import Platform
from runyard.services.access import Principal
from runyard.store.tables import runs, workers
from runyard.timeutil import utcnow
from tests.conftest import PgDatabase

LEASE_S = 15.0


@pytest.fixture
def platform(backend: str, tmp_path: Path) -> Iterator[Platform]:
    pg = PgDatabase.create() if backend == "postgres" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=pg.url if pg else None)
    plat = Platform(settings)
    try:
        yield plat
    finally:
        plat.close()
        if pg:
            pg.drop()


def _worker(platform: Platform, heartbeat_age_s: float, stopped: bool = False) -> str:
    now = utcnow()
    worker_id = new_id("wrk")
    with platform.db.write() as conn:
        conn.execute(workers.insert().values(
            id=worker_id, hostname="test", pid=1, slots=1, started_at=now - timedelta(minutes=5),
            heartbeat_at=now - timedelta(seconds=heartbeat_age_s), stopped_at=now if stopped else None))
    return worker_id


def _running_run(platform: Platform, worker_id: str, *, lease_expired: bool) -> str:
    principal = Principal(token_id="tok_test", workspace_id=platform.workspace_id, role="admin")
    run, _ = platform.runs.create(principal, tool="sleepy")
    lease = utcnow() + timedelta(seconds=-1 if lease_expired else LEASE_S)
    with platform.db.write() as conn:
        conn.execute(runs.update().where(runs.c.id == run["id"]).values(
            status="running", worker_id=worker_id, started_at=utcnow(), lease_expires_at=lease))
    return run["id"]


def _status(platform: Platform, run_id: str) -> tuple[str, str | None]:
    with platform.db.read() as conn:
        row = conn.execute(sa.select(runs.c.status, runs.c.error).where(runs.c.id == run_id)).one()
    return row.status, (row.error or {}).get("type")


def test_expired_leases_of_live_workers_are_kept_and_of_gone_workers_reaped(platform: Platform) -> None:
    platform.tools.deploy(platform.workspace_id, name="sleepy", code="def main():\n    return 1\n")
    live = _worker(platform, heartbeat_age_s=1)  # heartbeating, just late renewing a lease
    silent = _worker(platform, heartbeat_age_s=LEASE_S + 5)  # killed: no heartbeat for a lease
    stopped = _worker(platform, heartbeat_age_s=1, stopped=True)
    slow_run = _running_run(platform, live, lease_expired=True)
    lost_run = _running_run(platform, silent, lease_expired=True)
    stopped_run = _running_run(platform, stopped, lease_expired=True)
    unknown_run = _running_run(platform, "wrk_never_registered", lease_expired=True)
    fresh_run = _running_run(platform, silent, lease_expired=False)

    assert platform.runs.reap_lost(stale_after_s=LEASE_S) == 3
    assert _status(platform, slow_run) == ("running", None)
    for run_id in (lost_run, stopped_run, unknown_run):
        assert _status(platform, run_id) == ("failed", "worker_lost")
    assert _status(platform, fresh_run) == ("running", None)  # its lease still runs

    # The live worker itself, having just renewed what it holds, gives up what it lost track of.
    assert platform.runs.reap_lost(stale_after_s=LEASE_S, own_worker_id=live) == 1
    assert _status(platform, slow_run) == ("failed", "worker_lost")

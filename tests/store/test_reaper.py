"""The reaper takes runs from workers that are gone, never from live ones that are slow."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Principal
from runyard.store.tables import runs, usage_events, workers
from runyard.timeutil import utcnow
from runyard.wiring import Platform

LEASE_S = 15.0



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


def _usage_rows(platform: Platform, run_id: str) -> int:
    with platform.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(usage_events)
                            .where(usage_events.c.ref_id == run_id)).scalar_one()


def test_a_run_ends_once_with_its_usage_and_notification(platform: Platform) -> None:
    """The end of an attempt and its usage row are written together, and other nodes
    hear of it (on PostgreSQL, by NOTIFY) — none of it when the run is no longer the
    worker's."""
    platform.tools.deploy(platform.workspace_id, name="sleepy", code="def main():\n    return 1\n")
    worker = _worker(platform, heartbeat_age_s=LEASE_S + 5)
    listener = None
    if platform.db.is_postgres:
        import psycopg

        listener = psycopg.connect(platform.settings.db_url.replace("+psycopg", ""), autocommit=True)
        listener.execute("LISTEN runyard")
        # Pose as another node (a lone node relays nothing): announce ourselves.
        listener.execute("SELECT pg_notify('runyard', %s)", (json.dumps({"n": "test-peer", "e": [["node.hello", None]]}),))
        deadline = time.monotonic() + 5
        while not platform.notifier.has_peers() and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        kept, reaped = _running_run(platform, worker, lease_expired=False), _running_run(platform, worker,
                                                                                           lease_expired=True)
        assert platform.runs.reap_lost(stale_after_s=LEASE_S) == 1
        usage = {"wall_ms": 1500.0, "cpu_s": 0.1, "peak_rss_mb": 20.0}
        rows = {}
        for run_id in (kept, reaped):
            rows[run_id] = platform.runs.row(platform.workspace_id, run_id)
        ended = platform.runs.finish(rows[kept], worker_id=worker, status="succeeded", output={"x": 1}, error=None,
                                     usage=usage, log_bytes=3, log_truncated=False)
        late = platform.runs.finish(rows[reaped], worker_id=worker, status="succeeded", output={"x": 2},
                                    error=None, usage=usage, log_bytes=3, log_truncated=False)
        assert (ended, late) == ("succeeded", "lost")
        assert _status(platform, kept) == ("succeeded", None)
        assert _status(platform, reaped) == ("failed", "worker_lost")  # the late end changed nothing
        assert (_usage_rows(platform, kept), _usage_rows(platform, reaped)) == (1, 0)
        if listener is not None:
            heard = []
            for note in listener.notifies(timeout=1.0):
                heard += [(e[0], e[1]) for e in json.loads(note.payload)["e"] if e[0].startswith("run.done:")]
            # The reaper's end of the lost run, then the kept run's — nothing of the late end.
            assert sorted(heard) == sorted([(f"run.done:{reaped}", "failed"),
                                            (f"run.done:{kept}", {"status": "succeeded"})])
    finally:
        if listener is not None:
            listener.close()


def test_reaper_removes_the_work_dirs_of_lost_runs(platform: Platform) -> None:
    platform.tools.deploy(platform.workspace_id, name="sleepy", code="def main():\n    return 1\n")
    gone = _worker(platform, heartbeat_age_s=LEASE_S + 5)
    live = _worker(platform, heartbeat_age_s=1)
    lost_run, kept_run = _running_run(platform, gone, lease_expired=True), _running_run(platform, live,
                                                                                         lease_expired=False)
    work = platform.settings.data_dir / "work"
    for run_id in (lost_run, kept_run):  # as a killed worker's runs leave them
        (work / run_id / ".tmp").mkdir(parents=True)
        (work / run_id / "scratch.bin").write_bytes(b"x" * 10)
        (work / f"{run_id}.out" / "sub").mkdir(parents=True)
        (work / f"{run_id}.out" / "sub" / "result.txt").write_text("partial")
    assert platform.runs.reap_lost(stale_after_s=LEASE_S) == 1
    assert _status(platform, lost_run) == ("failed", "worker_lost")
    assert not (work / lost_run).exists() and not (work / f"{lost_run}.out").exists()
    assert (work / kept_run / "scratch.bin").exists() and (work / f"{kept_run}.out" / "sub").exists()


def test_reaper_retries_a_lost_run_under_the_tools_policy(platform: Platform) -> None:
    ws = platform.workspace_id
    code = "def main():\n    return 1\n"
    platform.tools.deploy(ws, name="sleepy", code=code, retries=1, retry_backoff_s=30)
    gone = _worker(platform, heartbeat_age_s=LEASE_S + 5)
    backing_off = _running_run(platform, gone, lease_expired=True)
    # A new version that retries only its own errors: its lost runs are not retried.
    platform.tools.deploy(ws, name="sleepy", code=code, retries=1, retry_on=["error"])
    not_retried = _running_run(platform, gone, lease_expired=True)
    assert platform.runs.reap_lost(stale_after_s=LEASE_S) == 2
    assert _status(platform, not_retried) == ("failed", "worker_lost")
    with platform.db.read() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == backing_off)).one()
    assert (row.status, row.attempt, row.error["type"]) == ("queued", 2, "worker_lost")
    assert row.not_before is not None
    wait = (row.not_before - row.queued_at).total_seconds()
    assert wait == pytest.approx(30, abs=1e-3)  # retry_backoff_s * 2**0 before attempt 2
    # Not claimed during its backoff; claimed (and the wait cleared) once it has passed.
    assert platform.runs.claim("wrk_other", 4, LEASE_S) == []
    with platform.db.write() as conn:
        conn.execute(runs.update().where(runs.c.id == backing_off).values(not_before=utcnow() - timedelta(seconds=1)))
    claimed = platform.runs.claim("wrk_other", 4, LEASE_S)
    assert [(r.id, r.attempt, r.not_before) for r in claimed] == [(backing_off, 2, None)]

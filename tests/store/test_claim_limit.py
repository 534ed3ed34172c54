"""A claim takes at most the free slots, however long the queue, on both backends."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.runs import TERMINAL_STATUSES
from runyard.store.tables import runs
from runyard.wiring import Platform
from runyard.worker.supervisor import Worker

BACKLOG = 200



def _backlog(platform: Platform, tool: str, code: str) -> list[str]:
    platform.tools.deploy(platform.workspace_id, name=tool, code=code)
    principal = Principal(token_id="tok_test", workspace_id=platform.workspace_id, role="admin")
    return [platform.runs.create(principal, tool=tool)[0]["id"] for _ in range(BACKLOG)]


def _counts(platform: Platform) -> dict[str, int]:
    with platform.db.read() as conn:
        rows = conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)).all()
    return {status: count for status, count in rows}


def test_concurrent_claims_never_take_more_than_asked(platform: Platform) -> None:
    """Claimers racing over a backlog of 200 each get at most their limit, and no run twice
    (on PostgreSQL the pick used to be re-run per outer row: an 8-slot claim took 92)."""
    ids = set(_backlog(platform, "claimed", "def main():\n    return 1\n"))
    limit = 8
    taken: list[list[str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claimer(worker_id: str) -> None:
        try:
            while True:
                rows = platform.runs.claim(worker_id, limit, 15.0)
                with lock:
                    taken.append([row.id for row in rows])
                if not rows:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"wrk_claimer{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    sizes = [len(batch) for batch in taken]
    assert max(sizes) == limit, sizes  # the backlog was long enough to fill each claim
    assert all(size <= limit for size in sizes), sizes
    claimed = [run_id for batch in taken for run_id in batch]
    assert len(claimed) == len(set(claimed)) == BACKLOG
    assert set(claimed) == ids
    assert _counts(platform) == {"running": BACKLOG}


def test_a_worker_never_runs_more_than_its_slots(platform: Platform) -> None:
    """A worker started on a backlog of 200: at every sample, the runs running are at most
    its slots, and every claim it made took at most the slots it had free."""
    slots = 4
    _backlog(platform, "slotted", "import time\ndef main():\n    time.sleep(0.02)\n    return 1\n")
    claims: list[tuple[int, int]] = []  # (asked, got)
    original = platform.runs.claim

    def recording_claim(worker_id: str, limit: int, lease_s: float) -> list[Any]:
        rows = original(worker_id, limit, lease_s)
        claims.append((limit, len(rows)))
        return rows

    platform.runs.claim = recording_claim  # type: ignore[method-assign]
    worker = Worker(platform, slots)
    worker.start()
    samples: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            counts = _counts(platform)
            samples.append(counts.get("running", 0))
            if sum(counts.get(s, 0) for s in TERMINAL_STATUSES) == BACKLOG:
                break
            assert time.monotonic() < deadline, counts
            time.sleep(0.002)
    finally:
        worker.stop(grace_s=5)
    assert max(samples) <= slots, samples
    assert max(samples) == slots, samples  # the backlog kept every slot busy at some point
    assert all(got <= asked <= slots for asked, got in claims), claims
    assert _counts(platform) == {"succeeded": BACKLOG}

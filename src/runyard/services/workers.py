"""The worker registry: workers announce themselves, heartbeat and sign off; which are alive."""

from __future__ import annotations

import os
import socket
from typing import Any

import sqlalchemy as sa

from runyard.store.db import Database
from runyard.store.tables import runs, workers
from runyard.timeutil import as_utc, utcnow


class WorkerRegistry:
    """The ``workers`` rows: one per worker process, kept fresh by its heartbeat."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, worker_id: str, slots: int) -> None:
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(workers.insert().values(id=worker_id, hostname=socket.gethostname(), pid=os.getpid(),
                                                 slots=slots, started_at=now, heartbeat_at=now))

    def heartbeat(self, worker_id: str) -> None:
        with self.db.write() as conn:
            conn.execute(workers.update().where(workers.c.id == worker_id).values(heartbeat_at=utcnow()))

    def sign_off(self, worker_id: str) -> None:
        """The worker stops: the runs it still holds go to the reaper at once (their leases
        end now, not after a lease period), and it counts as gone."""
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(runs.update().where(runs.c.worker_id == worker_id, runs.c.status == "running")
                         .values(lease_expires_at=now))
            conn.execute(workers.update().where(workers.c.id == worker_id).values(stopped_at=now))


def live_worker_count(db: Any, within_s: float = 30.0) -> int:
    """Workers that heartbeated within ``within_s`` and have not stopped."""
    cutoff = utcnow().timestamp() - within_s
    with db.read() as conn:
        rows = conn.execute(sa.select(workers.c.heartbeat_at).where(workers.c.stopped_at.is_(None))).all()
    return sum(1 for r in rows if as_utc(r.heartbeat_at).timestamp() >= cutoff)  # type: ignore[union-attr]

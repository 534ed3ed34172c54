"""Worker registry reads: which workers are alive."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from runyard.store.tables import workers
from runyard.timeutil import as_utc, utcnow


def live_worker_count(db: Any, within_s: float = 30.0) -> int:
    """Workers that heartbeated within ``within_s`` and have not stopped."""
    cutoff = utcnow().timestamp() - within_s
    with db.read() as conn:
        rows = conn.execute(sa.select(workers.c.heartbeat_at).where(workers.c.stopped_at.is_(None))).all()
    return sum(1 for r in rows if as_utc(r.heartbeat_at).timestamp() >= cutoff)  # type: ignore[union-attr]

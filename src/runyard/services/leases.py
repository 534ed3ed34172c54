"""Work queues kept in a table: a row ``pending`` until a worker claims it with a lease."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from runyard.store.db import Database


def claim_oldest_pending(db: Database, table: sa.Table, *, status: str, worker_id: str, now: datetime,
                         lease_s: float) -> Any:
    """The oldest ``pending`` row of ``table`` (by ``created_at``), moved to ``status`` and
    held by ``worker_id`` under a lease of ``lease_s``; None when there is none, or another
    worker took it first (the update's ``status == "pending"`` guard decides)."""
    with db.write() as conn:
        candidate = conn.execute(sa.select(table.c.id).where(table.c.status == "pending")
                                 .order_by(table.c.created_at).limit(1)).scalar()
        if candidate is None:
            return None
        claimed = conn.execute(table.update().where(table.c.id == candidate, table.c.status == "pending").values(
            status=status, worker_id=worker_id, started_at=now,
            lease_expires_at=now + timedelta(seconds=lease_s))).rowcount
        if not claimed:
            return None
        return conn.execute(sa.select(table).where(table.c.id == candidate)).one()

"""Liveness and readiness probes (outside /api/v1, unauthenticated)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from runyard.api.responses import JSON
from runyard.store.tables import workers
from runyard.timeutil import utcnow

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSON:
    platform = request.app.state.platform

    def check() -> dict:
        out: dict = {"database": "ok", "workers": 0}
        try:
            with platform.db.read() as conn:
                cutoff = utcnow().timestamp() - 30
                rows = conn.execute(sa.select(workers.c.heartbeat_at).where(workers.c.stopped_at.is_(None))).all()
        except Exception as exc:
            out["database"] = f"error: {exc.__class__.__name__}"
            return out
        from runyard.timeutil import as_utc
        out["workers"] = sum(1 for r in rows if as_utc(r.heartbeat_at).timestamp() >= cutoff)  # type: ignore[union-attr]
        return out

    result = await run_in_threadpool(check)
    ready = result["database"] == "ok" and result["workers"] > 0
    return JSON({"status": "ready" if ready else "not_ready", **result}, status_code=200 if ready else 503)

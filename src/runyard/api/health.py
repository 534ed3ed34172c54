"""Liveness and readiness probes (outside /api/v1, unauthenticated)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.services.workers import live_worker_count

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the database is unreachable or no worker is live (same body)"}})
async def readyz(request: Request) -> JSON:
    platform = request.app.state.platform

    def check() -> dict:
        try:
            return {"database": "ok", "workers": live_worker_count(platform.db)}
        except Exception as exc:
            return {"database": f"error: {exc.__class__.__name__}", "workers": 0}

    result = await in_thread(check)
    ready = result["database"] == "ok" and result["workers"] > 0
    return JSON({"status": "ready" if ready else "not_ready", **result}, status_code=200 if ready else 503)

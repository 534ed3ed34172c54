"""Liveness and readiness probes (outside /api/v1, unauthenticated)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from runyard.api.deps import authenticate
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.services.access import SEE_NODE_PROTECTIONS
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
    if await _may_see_protections(request):
        # Which run protections this node enforces: for admins only (it maps the attack surface).
        executor = platform.running_executor()
        result["sandbox"] = executor.protections if executor is not None else "no worker on this node"
    return JSON({"status": "ready" if ready else "not_ready", **result}, status_code=200 if ready else 503)


async def _may_see_protections(request: Request) -> bool:
    if not request.headers.get("authorization"):
        return False
    try:
        principal = await authenticate(request.app.state.platform, None, request.headers["authorization"], {})
    except Exception:  # noqa: BLE001 - a probe answers without details rather than fail
        return False
    return SEE_NODE_PROTECTIONS.allows(principal)

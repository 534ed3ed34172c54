"""/workspace/plan — the workspace's plan: any key reads it, only the operator sets it
(services.plans)."""

from __future__ import annotations

from fastapi import APIRouter

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.plans import PlanUpdate, PlanView

router = APIRouter(tags=["plans"], responses=error_responses(*AUTHENTICATED))


@router.get("/workspace/plan", response_model=PlanView)
async def get_plan(platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.plans.get, principal)


@router.put("/workspace/plan", response_model=PlanView)
async def set_plan(body: PlanUpdate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.plans.set, principal, body.model_dump(exclude_unset=True))

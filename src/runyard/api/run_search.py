"""POST /runs/search — runs matching conditions on their columns and nested values."""

from __future__ import annotations

from fastapi import APIRouter

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.run_search import RunSearchPage, RunSearchRequest
from runyard.services.run_search import RunSearchService

router = APIRouter(tags=["runs"], responses=error_responses(*AUTHENTICATED))


@router.post("/runs/search", response_model=RunSearchPage, responses=error_responses(400))
async def search_runs(body: RunSearchRequest, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Runs matching every prop (``{field, op, value}``), each with only the ``select``ed
    columns; ``total`` when ``with_total_count``. Any key reads; a restricted key finds
    only its tools' runs."""
    return await in_thread(RunSearchService(platform).search, principal, body)

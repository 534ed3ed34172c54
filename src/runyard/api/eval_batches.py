"""/batches — evaluation batches: one run per example, summed up against expected outputs
(services.eval_batches). Not ``/runs/batch``, which creates any runs at once."""

from __future__ import annotations

from fastapi import APIRouter, Query

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.evaluation import BatchCreate, BatchView

router = APIRouter(tags=["evaluation"], responses=error_responses(*AUTHENTICATED))


@router.post("/batches", status_code=201, response_model=BatchView, response_model_exclude_unset=False,
             responses=error_responses(404, 413))
async def create_batch(body: BatchCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Start one run of a tool or workflow per example (inline, or the rows of a dataset or
    set with an `example_id` column), each tagged `batch_id` and `example_id`."""
    examples = ([e.model_dump() for e in body.examples] if isinstance(body.examples, list)
                else body.examples.model_dump(exclude_none=True))
    return await in_thread(lambda: platform.eval_batches.create(
        principal, tool=body.tool, workflow=body.workflow, version=body.version, examples=examples))


@router.get("/batches", response_model=Page[BatchView])
async def list_batches(platform: PlatformDep, principal: PrincipalDep, tool: str | None = None,
                       workflow: str | None = None, cursor: str | None = None, limit: int = Query(50),
                       include_total: bool = False) -> dict:
    """Batches, newest first, with their runs' counts by status."""
    return await paged(platform.eval_batches.list, principal, tool=tool, workflow=workflow, cursor=cursor,
                       limit=limit, include_total=include_total)


@router.get("/batches/{batch_id}", response_model=BatchView, responses=error_responses(404))
async def get_batch(batch_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Counts by status, the mean score against expected outputs, and the examples that did
    worse than in the previous batch of the same target."""
    return await in_thread(platform.eval_batches.get, principal, batch_id)


@router.post("/batches/{batch_id}/cancel", response_model=BatchView, responses=error_responses(404))
async def cancel_batch(batch_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Cancel the batch's runs still going."""
    return await in_thread(platform.eval_batches.cancel, principal, batch_id)

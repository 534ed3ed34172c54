"""/runs/{id}/files — a run's input and output files as rows; deleting an input before the run starts."""

from __future__ import annotations

from fastapi import APIRouter, Response

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.run_details import RunFileView

router = APIRouter(tags=["runs"], responses=error_responses(*AUTHENTICATED))


@router.get("/runs/{run_id}/files", response_model=Page[RunFileView], responses=error_responses(404))
async def list_run_files(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The files the run was given (``direction: input``) then those it wrote (``output``,
    by path); a workflow run's include its steps' with their ``step``."""
    items = await in_thread(platform.run_file_rows.list, principal, run_id)
    return {"object": "list", "items": items, "next_cursor": None, "total": len(items)}


@router.delete("/runs/{run_id}/files/{file_id}", status_code=204,
               responses=error_responses(404, 409))
async def delete_run_file(run_id: str, file_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    """Remove an input file while the run has not started (awaiting confirmation or queued);
    after that, 409 ``run_already_started``."""
    await in_thread(platform.run_file_rows.delete, principal, run_id, file_id)
    return Response(status_code=204)

"""/namespaces/{ns}/datasets/{ds}/cleaning: model-proposed cleaning transforms committed as
new datasets (services.cleaning)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.cleaning import CleaningRequest, CleaningTaskView
from runyard.services.errors import NotFound, ValidationFailed

router = APIRouter(tags=["language models"], responses=error_responses(*AUTHENTICATED))


@router.post("/namespaces/{ns}/datasets/{ds}/cleaning", status_code=202, response_model=CleaningTaskView,
             responses=error_responses(400, 404, 409))
async def request_cleaning(ns: str, ds: str, body: CleaningRequest, platform: PlatformDep,
                           principal: PrincipalDep) -> dict:
    """Queue a cleaning task: the model proposes one SQL transform for the prompts, a worker runs
    it in the sandbox and commits its rows as the new dataset ``output_namespace/output_dataset``
    (409 ``dataset_exists`` if it exists, ``llm_not_configured`` without a provider)."""
    return await in_thread(platform.cleaning.submit, principal, ns, ds, prompts=body.prompts,
                           output_namespace=body.output_namespace, output_dataset=body.output_dataset,
                           provider=body.provider, model=body.model)


def _task(platform: PlatformDep, principal: PrincipalDep, ns: str, ds: str, task_id: str, wait: float) -> dict:
    view = platform.cleaning.wait(principal, task_id, wait) if wait else platform.cleaning.get(principal, task_id)
    if (view["source"]["namespace"], view["source"]["dataset"]) != (ns, ds):
        raise NotFound(f"cleaning task {task_id!r} not found", code="cleaning_task_not_found")
    return view


@router.get("/namespaces/{ns}/datasets/{ds}/cleaning/{task_id}", response_model=CleaningTaskView,
            responses=error_responses(404))
async def get_cleaning(ns: str, ds: str, task_id: str, platform: PlatformDep, principal: PrincipalDep,
                       wait: float = Query(0.0, json_schema_extra={"minimum": 0, "maximum": 300},
                                           description="seconds to wait for the task to finish")) -> dict:
    """The task: its status, the SQL the model proposed, the error (``code``, ``message``)."""
    if not 0 <= wait <= 300:
        raise ValidationFailed("wait must be between 0 and 300 seconds", details={"field": "wait"})
    return await in_thread(_task, platform, principal, ns, ds, task_id, wait)

"""The DataLinks ingestion proxy's REST surface (``/api/pipeline``) served from runyard's
ingest proxy runs (services.ingest_proxy), so the official ``datalinks`` client's
``IngestProxyAPI``/``PipelineRun`` works unchanged with its host pointed here
(``DL_INGEST_PROXY=http://<runyard>/compat/datalinks-proxy``).

The client's camelCase body maps onto runyard's request: ``dataBlobUrl`` is fetched as a
``dataUrl`` is (under the outbound-host policy), ``datalinksInferenceSettings``' provider and
model stand in for ``llm``'s when that is absent; ``datalinksUsername`` is not a credential
(the key decides who acts) and is ignored. The run id comes back in ``x-workflow-run-id``;
the stream is runyard's NDJSON events, ending with ``complete`` or ``error``. Errors are
answered in DataLinks' shape, as on ``/compat/datalinks``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from runyard.api.compat.datalinks import Body, CompatRoute
from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.ingest_proxy import event_stream, start_run
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.schemas.ingest_proxy import LLMSettings, ProxyRunCreate
from runyard.services.errors import ValidationFailed

PREFIX = "/compat/datalinks-proxy"
router = APIRouter(route_class=CompatRoute, include_in_schema=False)


class PipelineBody(Body):
    datalinks_username: str | None = Field(default=None, alias="datalinksUsername")
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str | None = Field(default=None, max_length=64)
    model: bool = True
    ingest: bool = True
    ontology: bool = True
    max_eval_retries: int = Field(default=3, alias="maxEvalRetries", ge=0, le=10)
    max_rows_for_modeling: int = Field(default=20, alias="maxRowsForModeling", ge=1, le=500)
    max_sample_rows: int = Field(default=10, alias="maxSampleRows", ge=1, le=500)
    enable_human_in_the_loop: bool = Field(default=False, alias="enableHumanInTheLoop")
    data: list[Any] | None = None
    data_url: str | None = Field(default=None, alias="dataUrl", max_length=4000)
    data_blob_url: str | None = Field(default=None, alias="dataBlobUrl", max_length=4000)
    user_prompt: str | None = Field(default=None, alias="userPrompt")
    predefined_schema: Any = Field(default=None, alias="predefinedSchema")
    explosion_helper_prompt: str | None = Field(default=None, alias="explosionHelperPrompt")
    coalescence_helper_prompt: str | None = Field(default=None, alias="coalescenceHelperPrompt")
    llm: dict[str, Any] | None = None
    datalinks_inference_settings: dict[str, Any] | None = Field(default=None, alias="datalinksInferenceSettings")


class HookBody(Body):
    hook_id: str | None = Field(default=None, alias="hookId", max_length=64)
    kind: str | None = None
    type: str | None = None
    approved: bool | None = None
    schema_: Any = Field(default=None, alias="schema")
    answer: str | None = Field(default=None, max_length=20_000)
    token: str | None = Field(default=None, max_length=512)


def _request(body: PipelineBody) -> ProxyRunCreate:
    urls = [u for u in (body.data_url, body.data_blob_url) if u is not None]
    if len(urls) > 1 or (urls and body.data is not None):
        raise ValidationFailed("give exactly one of data, dataUrl or dataBlobUrl", code="invalid_data_source")
    llm = dict(body.llm or {})
    settings = body.datalinks_inference_settings or {}
    for key in ("provider", "model"):
        if llm.get(key) is None and settings.get(key) is not None:
            llm[key] = settings[key]
    return ProxyRunCreate.model_validate({
        "namespace": body.namespace, "dataset": body.dataset, "data": body.data,
        "data_url": urls[0] if urls else None, "user_prompt": body.user_prompt, "model": body.model,
        "ingest": body.ingest, "ontology": body.ontology, "max_eval_retries": body.max_eval_retries,
        "max_rows_for_modeling": body.max_rows_for_modeling, "max_sample_rows": body.max_sample_rows,
        "enable_human_in_the_loop": body.enable_human_in_the_loop, "predefined_schema": body.predefined_schema,
        "explosion_helper_prompt": body.explosion_helper_prompt,
        "coalescence_helper_prompt": body.coalescence_helper_prompt,
        "llm": LLMSettings.model_validate(llm) if llm else None})


@router.post("/api/pipeline")
async def run_pipeline(body: PipelineBody, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    run = await in_thread(start_run, platform, principal, _request(body))
    return JSON({"runId": run["id"], "status": run["status"]}, headers={"x-workflow-run-id": run["id"]})


@router.get("/api/pipeline/{run_id}/stream")
async def stream_pipeline(run_id: str, platform: PlatformDep, principal: PrincipalDep,
                          start_index: int = Query(0, alias="startIndex", ge=0)) -> StreamingResponse:
    await in_thread(platform.ingest_proxy.get, principal, run_id)
    return event_stream(platform, principal, run_id, start_index)  # PipelineRun reconnects after FOLLOW_S


@router.get("/api/pipeline/{run_id}/trace")
async def pipeline_trace(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.ingest_proxy.trace, principal, run_id)


@router.post("/api/pipeline/{run_id}/hook")
async def pipeline_hook(run_id: str, body: HookBody, platform: PlatformDep, principal: PrincipalDep) -> dict:
    service = platform.ingest_proxy
    kind = body.kind or body.type
    if kind is None:  # the hook the run waits on
        kind = ((await in_thread(service.get, principal, run_id)).get("hook") or {}).get("kind") or "schema_review"
    return await in_thread(service.answer_hook, principal, run_id, kind=kind, hook_id=body.hook_id,
                           approved=body.approved, schema=body.schema_, answer=body.answer, token=body.token)

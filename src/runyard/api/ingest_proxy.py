"""/ingest-proxy/runs — auto-modelling pipeline runs (services.ingest_proxy): start, read,
stream the progress events (NDJSON, resumable by index), trace, answer a hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.ingest_proxy import ProxyHookAnswer, ProxyRun, ProxyRunCreate, ProxyTrace
from runyard.services.access import Principal
from runyard.services.ingest_proxy import END_EVENTS
from runyard.services.runs import TERMINAL_STATUSES
from runyard.wiring import Platform

router = APIRouter(tags=["ingest-proxy"], responses=error_responses(*AUTHENTICATED))
REREAD_S = 1.0  # a follower rereads this often with no event (one lost or not relayed)
KEEPALIVE_S = 15.0
FOLLOW_S = 300.0  # a stream follows this long at most: then the reader reconnects  # an empty line (NDJSON readers skip it) keeps idle connections open


def start_run(platform: Platform, principal: Principal, body: ProxyRunCreate, trigger: str = "api") -> dict:
    return platform.ingest_proxy.start(
        principal, namespace=body.namespace, dataset=body.dataset, data=body.data, data_url=body.data_url,
        workspace_file=body.workspace_file,
        user_prompt=body.user_prompt, model=body.model, ingest=body.ingest, ontology=body.ontology,
        max_eval_retries=body.max_eval_retries, max_rows_for_modeling=body.max_rows_for_modeling,
        max_sample_rows=body.max_sample_rows, enable_human_in_the_loop=body.enable_human_in_the_loop,
        predefined_schema=body.predefined_schema, explosion_helper_prompt=body.explosion_helper_prompt,
        coalescence_helper_prompt=body.coalescence_helper_prompt,
        llm=body.llm.model_dump(exclude_none=True) if body.llm else None, trigger=trigger)


@router.post("/ingest-proxy/runs", status_code=201, response_model=ProxyRun,
             responses=error_responses(400, 403, 404, 413))
async def create_proxy_run(body: ProxyRunCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Start an auto-modelling pipeline run: exactly one of `data` (rows inline), `data_url`
    (fetched by the worker under the outbound-host policy) or `workspace_file`. The run is a run (`GET /runs`,
    cancel, logs); its progress is `GET /ingest-proxy/runs/{id}/stream`."""
    return await in_thread(start_run, platform, principal, body)


@router.get("/ingest-proxy/runs/{run_id}", response_model=ProxyRun, responses=error_responses(404))
async def get_proxy_run(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.ingest_proxy.get, principal, run_id)


@router.get("/ingest-proxy/runs/{run_id}/trace", response_model=ProxyTrace, responses=error_responses(404))
async def proxy_run_trace(run_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Every model call (prompt, response, tokens, ms), the tokens summed, each phase's duration."""
    return await in_thread(platform.ingest_proxy.trace, principal, run_id)


@router.post("/ingest-proxy/runs/{run_id}/hook", response_model=ProxyRun, responses=error_responses(400, 404, 409))
async def answer_proxy_hook(run_id: str, body: ProxyHookAnswer, platform: PlatformDep,
                            principal: PrincipalDep) -> dict:
    """Answer the hook the run waits on (`waiting_for_input`): a schema review (`approved`,
    or a replacement `schema`), a clarification (`answer`), a token refresh (`token`)."""
    return await in_thread(platform.ingest_proxy.answer_hook, principal, run_id, kind=body.kind,
                           hook_id=body.hook_id, approved=body.approved, schema=body.schema_, answer=body.answer,
                           token=body.token)


@router.get("/ingest-proxy/runs/{run_id}/stream", response_model=None, responses={
    200: {"description": "The run's events as NDJSON from `start_index`, following new ones until a "
                         "`complete` or `error` event", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
    **error_responses(404)})
async def stream_proxy_run(run_id: str, platform: PlatformDep, principal: PrincipalDep,
                           start_index: int = Query(0, ge=0),
                           wait: float = Query(FOLLOW_S, ge=0, le=FOLLOW_S, description=(
                               "seconds to follow new events; the response then ends without a last event "
                               "and the reader reconnects with start_index"))) -> StreamingResponse:
    await in_thread(platform.ingest_proxy.get, principal, run_id)  # 404 before the stream starts
    return event_stream(platform, principal, run_id, start_index, wait)


def event_stream(platform: Platform, principal: Principal, run_id: str, start_index: int,
                 wait: float = FOLLOW_S) -> StreamingResponse:
    return StreamingResponse(follow(platform, principal, run_id, start_index, wait),
                             media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def follow(platform: Platform, principal: Principal, run_id: str, index: int,
                 wait: float) -> AsyncIterator[bytes]:
    """Events from ``index`` as they are appended: woken by ``ingest_proxy.event:<id>`` on the
    event hub (bridged across nodes), with a slow reread for a lost one; ends after the run's
    ``complete`` or ``error`` event, or after ``wait`` seconds (a run waiting for a person may
    wait for days: the reader reconnects from where it is)."""
    deadline = time.monotonic() + wait
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def on_event(_topic: str, _payload: Any) -> None:
        loop.call_soon_threadsafe(wake.set)

    unsubscribe = platform.hub.subscribe(f"ingest_proxy.event:{run_id}", on_event)
    service = platform.ingest_proxy
    try:
        idle = 0.0
        while True:
            wake.clear()
            events, status = await in_thread(service.events, principal, run_id, index)
            for event in events:
                yield orjson.dumps(event) + b"\n"
                index = event["index"] + 1
                if event["type"] in END_EVENTS:
                    return
            if events:
                idle = 0.0
                continue
            if status in TERMINAL_STATUSES:
                await in_thread(service.ensure_end_event, run_id)  # it ended without one (a cancel)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(wake.wait(), min(REREAD_S, remaining))
                idle = 0.0
            except TimeoutError:
                idle += REREAD_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield b"\n"
    finally:
        unsubscribe()

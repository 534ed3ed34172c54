"""/llm/providers (admins) and the model features that are not a flag on another route
(infer-description). Providers and calls: services.llm; features: services.llm_features."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from runyard.api.deps import PlatformDep, PrincipalDep, page_body
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.llm import (
    AnswerView,
    AskRequest,
    InferDescription,
    InferredDescription,
    ProviderCreate,
    ProviderUpdate,
    ProviderView,
)

router = APIRouter(tags=["language models"], responses=error_responses(*AUTHENTICATED))


@router.post("/llm/providers", status_code=201, response_model=ProviderView, responses=error_responses(409))
async def create_provider(body: ProviderCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """An OpenAI-compatible endpoint for the model features (admins; the key is stored encrypted)."""
    return await in_thread(platform.llm.create, principal, **body.model_dump())


@router.get("/llm/providers", response_model=Page[ProviderView])
async def list_providers(platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The workspace's providers, and the environment's (``env``) when RUNYARD_LLM_BASE_URL is set."""
    return page_body(await in_thread(platform.llm.list, principal))


@router.get("/llm/providers/{provider}", response_model=ProviderView, responses=error_responses(404))
async def get_provider(provider: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.llm.get, principal, provider)


@router.patch("/llm/providers/{provider}", response_model=ProviderView, responses=error_responses(404, 409))
async def update_provider(provider: str, body: ProviderUpdate, platform: PlatformDep,
                          principal: PrincipalDep) -> dict:
    return await in_thread(platform.llm.update, principal, provider, body.model_dump(exclude_unset=True))


@router.delete("/llm/providers/{provider}", status_code=204, responses=error_responses(404))
async def delete_provider(provider: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.llm.delete, principal, provider)
    return Response(status_code=204)


@router.post("/namespaces/{ns}/datasets/{ds}/infer-description", response_model=InferredDescription,
             responses=error_responses(404, 409, 502, 504))
async def infer_description(ns: str, ds: str, body: InferDescription, platform: PlatformDep,
                            principal: PrincipalDep) -> dict:
    """A description and field definitions for a dataset, from the model; without a provider,
    built from the column statistics (``source: "statistics"``). Nothing is saved."""
    return await in_thread(platform.llm_features.infer_description, principal, ns, ds, sample=body.sample,
                           current_description=body.current_description,
                           current_schema=[c.model_dump() for c in body.current_schema or []],
                           provider=body.provider, model=body.model)


_ASK_EVENTS = ("An SSE stream: one `plan` event, a `step` event per query the model ran, then `answer` or "
               "`error`; each event's data is a JSON object")


def _sse(event: dict[str, Any]) -> bytes:
    kind = event.pop("event")
    return f"event: {kind}\ndata: {orjson.dumps(event, default=str).decode()}\n\n".encode()


@router.post("/ask", response_model=None, responses={
    200: {"description": _ASK_EVENTS, "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **error_responses(404, 409)})
async def ask(body: AskRequest, platform: PlatformDep, principal: PrincipalDep) -> StreamingResponse:
    """A question answered by the model running read-only queries under this key's grants,
    streamed as it goes (docs/llm.md). A failure after the stream started is an `error` event."""
    events = platform.llm_features.ask(principal, body.query, namespace=body.namespace,
                                       helper_prompt=body.helper_prompt, provider=body.provider, model=body.model,
                                       max_steps=body.max_steps)
    first = await in_thread(next, events)  # refusals (no provider, an unknown namespace) answer as errors

    async def stream() -> AsyncIterator[bytes]:
        yield _sse(first)
        while (event := await in_thread(next, events, None)) is not None:
            yield _sse(event)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/autorag", response_model=AnswerView, responses=error_responses(404, 409, 502, 504))
async def autorag(body: AskRequest, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """``/ask`` answered at once: the answer, the queries the model ran and the trace."""
    return await in_thread(platform.llm_features.autorag, principal, body.query, namespace=body.namespace,
                           helper_prompt=body.helper_prompt, provider=body.provider, model=body.model,
                           max_steps=body.max_steps)

"""/templates — synthetic data templates: CRUD, versions, preview, streaming generation."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from runyard.api.bodies import json_body
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas import inline_schema
from runyard.schemas.common import Page
from runyard.schemas.synth import (
    GenerationRequest,
    PreviewRequest,
    PreviewView,
    TemplateDocument,
    TemplatePatch,
    TemplateView,
)
from runyard.services.errors import ValidationFailed
from runyard.services.synth_sets import SetService
from runyard.services.templates import CREATE_TEMPLATES, GENERATE_DATA, UPDATE_TEMPLATES, TemplateService
from runyard.synth import FORMATS

router = APIRouter(tags=["templates"], responses=error_responses(*AUTHENTICATED))
_ACCEPT_FORMATS = {"text/csv": "csv", "application/x-ndjson": "ndjson", "application/sql": "sql",
                   "application/vnd.apache.parquet": "parquet",
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}


def synth_services(platform: Any) -> tuple[TemplateService, SetService]:
    """The synth services of this node (wired in ``Platform``)."""
    return platform.templates, platform.sets


class GenerationStream(StreamingResponse):
    """A generation streamed from the API's threads that stops when its client goes away.

    Each piece is made by ``next()`` on a worker thread; whatever ends the response — the
    last piece, a disconnected client (a failed send, or Starlette's disconnect
    listener cancelling the task), server shutdown — closes the generator on the way
    out, after the piece in flight: no more blocks are made and the encoder releases
    what it holds.
    """

    _DONE = object()

    def __init__(self, pieces: Iterator[bytes], **kwargs: Any) -> None:
        self._pieces = pieces
        self._lock = threading.Lock()
        self._closed = False
        super().__init__(self._pump(), **kwargs)

    def _step(self) -> Any:
        with self._lock:
            if self._closed:
                return self._DONE
            return next(self._pieces, self._DONE)

    def _close(self) -> None:
        with self._lock:  # waits for a piece still being made
            self._closed = True
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()

    async def _pump(self) -> AsyncIterator[bytes]:
        while True:
            piece = await in_thread(self._step)
            if piece is self._DONE:
                return
            yield piece

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await in_thread(self._close)


def choose_format(body: dict[str, Any], accept: str) -> str:
    fmt = body.get("format")
    if fmt is None:
        for media in (part.split(";")[0].strip().lower() for part in accept.split(",")):
            if media in _ACCEPT_FORMATS:
                return _ACCEPT_FORMATS[media]
        return "json"
    if fmt not in FORMATS:
        raise ValidationFailed(f"format must be one of {', '.join(FORMATS)}", code="invalid_format",
                               details={"field": "format"})
    return fmt


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": inline_schema(model)}}}}


@router.post("/templates", status_code=201, openapi_extra=_body(TemplateDocument), response_model=TemplateView,
             response_model_exclude_unset=True, responses=error_responses(409, 413))
async def create_template(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    CREATE_TEMPLATES.check(principal)  # before the body is parsed; the service checks again
    body = await json_body(request)
    templates, _ = synth_services(platform)
    return await in_thread(templates.create, principal, body)


@router.get("/templates", response_model=Page[TemplateView], response_model_exclude_unset=True)
async def list_templates(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                         limit: int = Query(100), include_total: bool = False) -> dict:
    templates, _ = synth_services(platform)
    return await paged(templates.list, principal, cursor=cursor, limit=limit,
                           include_total=include_total)


@router.get("/templates/{ref}", response_model=TemplateView, response_model_exclude_unset=True,
            responses=error_responses(404))
async def get_template(ref: str, platform: PlatformDep, principal: PrincipalDep, version: int | None = None) -> dict:
    templates, _ = synth_services(platform)
    return await in_thread(templates.get, principal, ref, version)


@router.patch("/templates/{ref}", openapi_extra=_body(TemplatePatch), response_model=TemplateView,
              response_model_exclude_unset=True, responses=error_responses(404, 409, 413))
async def update_template(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    UPDATE_TEMPLATES.check(principal)  # before the body is parsed; the service checks again
    body = await json_body(request)
    templates, _ = synth_services(platform)
    return await in_thread(templates.update, principal, ref, body)


@router.delete("/templates/{ref}", status_code=204, responses=error_responses(404))
async def delete_template(ref: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    templates, _ = synth_services(platform)
    await in_thread(templates.delete, principal, ref)
    return Response(status_code=204)


@router.get("/templates/{ref}/versions", response_model=Page[TemplateView], response_model_exclude_unset=True,
            responses=error_responses(404))
async def list_versions(ref: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(100)) -> dict:
    templates, _ = synth_services(platform)
    return await paged(templates.versions, principal, ref, cursor=cursor, limit=limit)


@router.get("/templates/{ref}/versions/{version}", response_model=TemplateView, response_model_exclude_unset=True,
            responses=error_responses(404))
async def get_version(ref: str, version: int, platform: PlatformDep, principal: PrincipalDep) -> dict:
    templates, _ = synth_services(platform)
    return await in_thread(templates.get, principal, ref, version)


@router.post("/templates/{ref}/preview", openapi_extra=_body(PreviewRequest, required=False),
             response_model=PreviewView, response_model_exclude_unset=True, responses=error_responses(404, 413))
async def preview(ref: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    body = await json_body(request, allow_empty=True)
    templates, _ = synth_services(platform)
    return await in_thread(templates.preview, principal, ref, body)


@router.post("/templates/{ref}/generate", response_model=None, openapi_extra=_body(GenerationRequest), responses={
    200: {"description": "The rows, streamed in the chosen format; with `into_set`, the saved set as JSON",
          "content": {"application/json": {}, **{media: {"schema": {"type": "string", "format": "binary"}}
                                                 for media in _ACCEPT_FORMATS}}},
    **error_responses(404, 413)})
async def generate(ref: str, request: Request, platform: PlatformDep,
                   principal: PrincipalDep) -> StreamingResponse | dict:
    GENERATE_DATA.check(principal)  # before the body is parsed; the service checks again
    body = await json_body(request)
    templates, _ = synth_services(platform)
    into_set = body.pop("into_set", None)
    if into_set is not None:
        if not isinstance(into_set, str):
            raise ValidationFailed("into_set must be a set name", details={"field": "into_set"})
        return await in_thread(templates.generate_into_set, principal, ref, body, into_set)
    fmt = choose_format(body, request.headers.get("accept", ""))
    # Every refusal (bad template, unique space, options, quota) happens here, before
    # the status line: once streaming starts the output is certain to be complete.
    generation = await in_thread(templates.prepare, principal, ref, body, fmt=fmt)
    plan = generation.plan
    headers = {
        "X-Runyard-Seed": str(plan.seed), "X-Runyard-Template-Version": str(plan.version),
        "X-Runyard-Row-Count": str(plan.count),
        "Content-Disposition": f'attachment; filename="{plan.template.name}.{generation.encoder.extension}"',
    }
    return GenerationStream(generation.stream(), media_type=generation.media_type, headers=headers)

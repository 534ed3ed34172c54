"""/sets — saved sets: named, versioned rows (re-using a name adds a version)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from runyard.api.bodies import json_body
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.templates import synth_services
from runyard.schemas import inline_schema
from runyard.schemas.common import Page
from runyard.schemas.synth import SetSave, SetView
from runyard.services.errors import ValidationFailed
from runyard.services.synth_sets import SAVE_SETS

router = APIRouter(tags=["sets"], responses=error_responses(*AUTHENTICATED))


_SAVE_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(SetSave)}}}}


@router.post("/sets", status_code=201, openapi_extra=_SAVE_DOC, response_model=SetView,
             response_model_exclude_unset=True, responses=error_responses(413))
async def save_set(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    SAVE_SETS.check(principal)  # before the body is parsed; the service checks again
    body = await json_body(request)
    unknown = sorted(set(body) - set(SetSave.model_fields))  # the values' own rules: the service's
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}", details={"fields": unknown})
    _, sets = synth_services(platform)
    return await in_thread(sets.save_rows, principal, body.get("name"), body.get("rows"))


@router.get("/sets", response_model=Page[SetView], response_model_exclude_unset=True)
async def list_sets(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                    limit: int = Query(100), include_total: bool = False) -> dict:
    _, sets = synth_services(platform)
    return await paged(sets.list, principal, cursor=cursor, limit=limit,
                           include_total=include_total)


MAX_VERSION = 2**31 - 1  # versions are 32-bit integer columns: a larger one is refused, not a 500
MAX_OFFSET = 2**53  # answered back in JSON: beyond 64 bits it could not be


@router.get("/sets/{name}", responses=error_responses(404))
async def load_set(name: str, platform: PlatformDep, principal: PrincipalDep,
                   version: int | None = Query(None, ge=1, le=MAX_VERSION),
                   offset: int = Query(0, json_schema_extra={"minimum": 0, "maximum": MAX_OFFSET}),
                   limit: int = Query(10_000, json_schema_extra={"minimum": 1, "maximum": 1_000_000})) -> dict:
    _, sets = synth_services(platform)
    return await in_thread(sets.load, principal, name, version, offset=offset, limit=limit)


@router.delete("/sets/{name}", status_code=204, responses=error_responses(404))
async def delete_set(name: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    _, sets = synth_services(platform)
    await in_thread(sets.delete, principal, name)
    return Response(status_code=204)

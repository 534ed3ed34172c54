"""/schedules, /webhooks and /email-triggers (see services.schedules, services.webhooks and
services.email_triggers for who sees what), and the public ``POST /hooks/{token}`` a
webhook's sender calls.

``/hooks/{token}`` is authorised by the secret in its path, not by a bearer key: the body
guard (api.guard) looks the token up, and applies the hook's rate limit, before a byte of
the body is read; this route does it itself for a request without a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile

from runyard.api.bodies import load_json
from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, ErrorEnvelope, error_responses
from runyard.api.responses import JSON
from runyard.api.waiting import wait_for_run
from runyard.schemas.common import Page
from runyard.schemas.triggers import (
    EmailAliasCreate,
    EmailAliasView,
    EmailRecordView,
    EmailTriggerCreate,
    EmailTriggerPatch,
    EmailTriggerView,
    HookDelivery,
    ScheduleCreate,
    SchedulePatch,
    ScheduleTimes,
    ScheduleView,
    WebhookCreate,
    WebhookCreated,
    WebhookPatch,
    WebhookView,
)
from runyard.services.errors import DomainError
from runyard.services.runs import TERMINAL_STATUSES

router = APIRouter(responses=error_responses(*AUTHENTICATED))
hooks_router = APIRouter(tags=["webhooks"])
HOOKS_PREFIX = "/hooks/"
MAX_HOOK_WAIT_S = 30.0
MAX_HOOK_FILES = 100
MAX_HOOK_FIELDS = 200


# -- schedules -----------------------------------------------------------------------------------
@router.post("/schedules", status_code=201, response_model=ScheduleView, tags=["schedules"],
             responses=error_responses(413))
async def create_schedule(body: ScheduleCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.schedules.create, principal, **body.model_dump())


@router.get("/schedules", response_model=Page[ScheduleView], tags=["schedules"])
async def list_schedules(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                         limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.schedules.list, principal, cursor=cursor, limit=limit, include_total=include_total)


@router.get("/schedules/{schedule_id}", response_model=ScheduleView, tags=["schedules"],
            responses=error_responses(404))
async def get_schedule(schedule_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.schedules.get, principal, schedule_id)


@router.patch("/schedules/{schedule_id}", response_model=ScheduleView, tags=["schedules"],
              responses=error_responses(404, 413))
async def update_schedule(schedule_id: str, body: SchedulePatch, platform: PlatformDep,
                          principal: PrincipalDep) -> dict:
    return await in_thread(platform.schedules.update, principal, schedule_id, body.model_dump(exclude_unset=True))


@router.delete("/schedules/{schedule_id}", status_code=204, tags=["schedules"], responses=error_responses(404))
async def delete_schedule(schedule_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.schedules.delete, principal, schedule_id)
    return Response(status_code=204)


@router.get("/schedules/{schedule_id}/next", response_model=ScheduleTimes, tags=["schedules"],
            responses=error_responses(404))
async def next_times(schedule_id: str, platform: PlatformDep, principal: PrincipalDep,
                     count: int = Query(5, ge=1, le=100)) -> dict:
    return await in_thread(platform.schedules.next, principal, schedule_id, count)


# -- webhooks ------------------------------------------------------------------------------------
@router.post("/webhooks", status_code=201, response_model=WebhookCreated, tags=["webhooks"],
             responses=error_responses(413))
async def create_webhook(body: WebhookCreate, request: Request, platform: PlatformDep,
                         principal: PrincipalDep) -> dict:
    fields = body.model_dump()
    if body.signature is not None:
        fields["signature"] = body.signature.model_dump(exclude_none=True)
    hook, token = await in_thread(platform.webhooks.create, principal, **fields)
    return {**hook, "url": f"{str(request.base_url).rstrip('/')}{HOOKS_PREFIX}{token}"}


@router.get("/webhooks", response_model=Page[WebhookView], tags=["webhooks"])
async def list_webhooks(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                        limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.webhooks.list, principal, cursor=cursor, limit=limit, include_total=include_total)


@router.get("/webhooks/{webhook_id}", response_model=WebhookView, tags=["webhooks"], responses=error_responses(404))
async def get_webhook(webhook_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.webhooks.get, principal, webhook_id)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookView, tags=["webhooks"],
              responses=error_responses(404, 413))
async def update_webhook(webhook_id: str, body: WebhookPatch, platform: PlatformDep,
                         principal: PrincipalDep) -> dict:
    changes = body.model_dump(exclude_unset=True)
    if body.signature is not None:
        changes["signature"] = body.signature.model_dump(exclude_none=True)
    return await in_thread(platform.webhooks.update, principal, webhook_id, changes)


@router.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], responses=error_responses(404))
async def delete_webhook(webhook_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.webhooks.delete, principal, webhook_id)
    return Response(status_code=204)


# -- email triggers ------------------------------------------------------------------------------
@router.post("/email-triggers", status_code=201, response_model=EmailTriggerView, tags=["email triggers"],
             responses=error_responses(409, 413))
async def create_email_trigger(body: EmailTriggerCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.email_triggers.create, principal, **body.model_dump())


@router.get("/email-triggers", response_model=Page[EmailTriggerView], tags=["email triggers"])
async def list_email_triggers(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                              limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.email_triggers.list, principal, cursor=cursor, limit=limit,
                       include_total=include_total)


@router.get("/email-triggers/{trigger_id}", response_model=EmailTriggerView, tags=["email triggers"],
            responses=error_responses(404))
async def get_email_trigger(trigger_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.email_triggers.get, principal, trigger_id)


@router.patch("/email-triggers/{trigger_id}", response_model=EmailTriggerView, tags=["email triggers"],
              responses=error_responses(404, 413))
async def update_email_trigger(trigger_id: str, body: EmailTriggerPatch, platform: PlatformDep,
                               principal: PrincipalDep) -> dict:
    return await in_thread(platform.email_triggers.update, principal, trigger_id,
                           body.model_dump(exclude_unset=True))


@router.delete("/email-triggers/{trigger_id}", status_code=204, tags=["email triggers"],
               responses=error_responses(404))
async def delete_email_trigger(trigger_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.email_triggers.delete, principal, trigger_id)
    return Response(status_code=204)


@router.post("/email-triggers/{trigger_id}/aliases", status_code=201, response_model=EmailAliasView,
             tags=["email triggers"], responses=error_responses(404, 409, 413))
async def create_email_alias(trigger_id: str, body: EmailAliasCreate, platform: PlatformDep,
                             principal: PrincipalDep) -> dict:
    return await in_thread(platform.email_triggers.add_alias, principal, trigger_id, body.address)


@router.get("/email-triggers/{trigger_id}/aliases", response_model=Page[EmailAliasView], tags=["email triggers"],
            responses=error_responses(404))
async def list_email_aliases(trigger_id: str, platform: PlatformDep, principal: PrincipalDep,
                             cursor: str | None = None, limit: int = Query(100),
                             include_total: bool = False) -> dict:
    return await paged(platform.email_triggers.list_aliases, principal, trigger_id, cursor=cursor, limit=limit,
                       include_total=include_total)


@router.patch("/email-triggers/{trigger_id}/aliases/{alias_id}", response_model=EmailAliasView,
              tags=["email triggers"], responses=error_responses(404, 409, 413))
async def update_email_alias(trigger_id: str, alias_id: str, body: EmailAliasCreate, platform: PlatformDep,
                             principal: PrincipalDep) -> dict:
    return await in_thread(platform.email_triggers.update_alias, principal, trigger_id, alias_id, body.address)


@router.delete("/email-triggers/{trigger_id}/aliases/{alias_id}", status_code=204, tags=["email triggers"],
               responses=error_responses(404))
async def delete_email_alias(trigger_id: str, alias_id: str, platform: PlatformDep,
                             principal: PrincipalDep) -> Response:
    await in_thread(platform.email_triggers.delete_alias, principal, trigger_id, alias_id)
    return Response(status_code=204)


@router.get("/email-triggers/{trigger_id}/records", response_model=Page[EmailRecordView],
            tags=["email triggers"], responses=error_responses(404))
async def list_email_records(trigger_id: str, platform: PlatformDep, principal: PrincipalDep,
                             cursor: str | None = None, limit: int = Query(100),
                             include_total: bool = False) -> dict:
    """What became of the mail sent to the trigger's aliases, newest first."""
    return await paged(platform.email_triggers.list_records, principal, trigger_id, cursor=cursor, limit=limit,
                       include_total=include_total)


@router.get("/email-records", response_model=Page[EmailRecordView], tags=["email triggers"])
async def list_all_email_records(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                                 limit: int = Query(100), include_total: bool = False) -> dict:
    """Every record of the workspace, newest first, mail to no alias included (admins only)."""
    return await paged(platform.email_triggers.list_all_records, principal, cursor=cursor, limit=limit,
                       include_total=include_total)


# -- the public hook URL -------------------------------------------------------------------------
async def _hook_body(request: Request, body: bytes) -> tuple[Any, dict[str, tuple[str, Any]]]:
    """(the parsed JSON body, or the form fields; None for an empty body, {file field: (name, file)})."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=MAX_HOOK_FILES, max_fields=MAX_HOOK_FIELDS)
        fields: dict[str, Any] = {}
        files: dict[str, tuple[str, Any]] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[key] = (value.filename or key, value.file)
            else:
                fields[key] = value
        return fields, files
    if media and media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise DomainError("send JSON (or form fields)", code="unsupported_media_type", status=415)
    if not body:
        return None, {}
    state = request.scope.get("state", {})
    return (state["json_body"] if "json_body" in state else load_json(body)), {}


@hooks_router.post(
    "/hooks/{token}", status_code=202, response_model=HookDelivery,
    responses={200: {"model": HookDelivery, "description": "with `wait`: the run ended in time"},
               **error_responses(400, 401, 404, 409, 413, 415, 429),
               422: {"model": ErrorEnvelope, "description": "The hook's mapping failed on this request "
                                                            "(`mapping_failed`); no run."}})
async def call_hook(token: str, request: Request, platform: PlatformDep,
                    wait: float | None = Query(None, ge=0, le=MAX_HOOK_WAIT_S)) -> Response:
    """Start the hook's run with the request's JSON object (or form fields; files of a multipart
    body become the run's input files) as its inputs — or, when the hook has a `mapping`, with
    the mapping rendered over the request. Authorised by the token in the path (unknown or
    disabled: 404, nothing more) and, when the hook requires one, an HMAC signature of the body
    (401); a timestamped signature already accepted is refused (409 `webhook_replayed`). 202
    with the run's id; with ``wait`` (≤ 30 s), 200 and the run once it ended, or 202 and the run
    as it stands."""
    admitted = request.scope.get("state", {}).get("hook")
    if admitted is None:
        admitted = await in_thread(platform.webhooks.admit, token)
    row, principal = admitted
    body = await request.body()
    verified = await in_thread(platform.webhooks.verify, row, request.headers, body)
    claimed = await in_thread(platform.webhooks.claim, row, verified)
    try:
        payload, files = await _hook_body(request, body)
        inputs = await in_thread(platform.webhooks.inputs, row, payload, request.headers.items(),
                                 request.query_params.multi_items())
        run = await in_thread(platform.webhooks.deliver, row, principal, inputs, files)
    except DomainError:
        # refused before a run was made: forget the signature, so the sender may send it again
        await in_thread(platform.webhooks.release, row, claimed)
        raise
    if wait:
        run = await wait_for_run(platform, principal, run["id"], wait)
    finished = bool(wait) and run["status"] in TERMINAL_STATUSES
    return JSON({"object": "hook_delivery", "run_id": run["id"], "status": run["status"],
                 "run": run if wait else None}, status_code=200 if finished else 202)

"""/runs/batch and /runs/wait — many runs in one request: create them, wait for them.

``POST /runs/wait`` subscribes to ``run.done:<id>`` for every id, as ``?wait=`` and
``GET /runs/{id}/wait`` do for one (see ``api/waiting.py``), reads the runs once, and
then takes each end from its event; a re-read of the runs still pending every
:data:`FALLBACK_POLL_S` covers a lost notification.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Header, Request
from starlette.convertors import Convertor, register_url_convertor

from runyard.api.bodies import json_body, pick
from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.services import run_batches
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed

if TYPE_CHECKING:
    from runyard.wiring import Platform

router = APIRouter(tags=["runs"], responses=error_responses(*AUTHENTICATED))
MAX_WAIT_S = 600.0
#: The segments after /runs/ that name these routes, never a run.
RESERVED = ("batch", "wait", "search")


class _RunId(Convertor[str]):
    """A run id in a path: any segment but the reserved ones, so ``GET /runs/batch`` is
    405 (Allow: POST), not a lookup of a run called "batch"."""

    regex = f"(?!(?:{'|'.join(RESERVED)})$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("run_id", _RunId())
#: The path of one run, for ``GET /runs/{run_id}`` (``api/runs.py``).
RUN_PATH = "/runs/{run_id:run_id}"
FALLBACK_POLL_S = 0.5

# An item is judged on its own (an invalid one is answered in its place, not refused with
# the batch), so the schema says what it holds without constraining it.
_RUN_ITEM = {"description": "the body of `POST /runs` (`tool`, `version`, `inputs`, `tags`, "
                            "`requires_confirmation`, `timeout_s`) and optionally its own `idempotency_key`"}
_BATCH_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["runs"], "additionalProperties": False,
    "properties": {"runs": {"type": "array", "items": _RUN_ITEM,
                            "description": f"at most {run_batches.MAX_BATCH} (413 `batch_too_large`)"}}}}}}}
_WAIT_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["ids"], "additionalProperties": False, "properties": {
        "ids": {"type": "array", "items": {"type": "string", "minLength": 1},
                "description": f"at most {run_batches.MAX_BATCH} (413 `batch_too_large`)"},
        "timeout": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S, "default": 30},
        "return_when": {"type": "string", "enum": ["all", "any"], "default": "all"}}}}}}}


@router.post("/runs/batch", openapi_extra=_BATCH_DOC, responses={
    200: {"description": "One answer per item, in order: `{index, status, run}` (201 created, 200 an "
                         "idempotent replay) or `{index, status, error}` (the item was refused)"},
    **error_responses(413)})
async def create_batch(request: Request, platform: PlatformDep, principal: PrincipalDep,
                       idempotency_key: str | None = Header(None)) -> dict[str, Any]:
    """Create up to 1,000 runs; each item is judged alone, as `POST /runs` would judge it."""
    body = pick(await json_body(request), {"runs"})
    if "runs" not in body:
        raise ValidationFailed("runs is required", details={"field": "runs"})
    user_agent = request.headers.get("user-agent", "")
    trigger = request.headers.get("x-runyard-trigger") or ("sdk" if user_agent.startswith("runyard-python/")
                                                           else "api")
    items = await in_thread(run_batches.create_many, platform.runs, principal, body["runs"],
                            idempotency_key=idempotency_key, trigger=trigger)
    return {"object": "list", "items": items}


@router.post("/runs/wait", openapi_extra=_WAIT_DOC, responses={
    200: {"description": "`items`: the runs that are terminal; `pending`: the others, as they stand "
                         "when `timeout` passed (or, with `return_when: any`, when the first ended)"},
    **error_responses(404, 413)})
async def wait_many(request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict[str, Any]:
    """Long-poll over up to 1,000 runs: answers once all of them are terminal (or any, with
    `return_when: any`) or `timeout` seconds pass. An unknown or hidden run is 404."""
    body = pick(await json_body(request), {"ids", "timeout", "return_when"})
    ids = run_batches.check_ids(body.get("ids"))
    timeout = body.get("timeout", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= MAX_WAIT_S:
        raise ValidationFailed(f"timeout must be a number of seconds from 0 to {MAX_WAIT_S:g}",
                               details={"field": "timeout"})
    return_when = body.get("return_when", "all")
    if return_when not in ("all", "any"):
        raise ValidationFailed("return_when must be 'all' or 'any'", details={"field": "return_when"})
    done, pending = await wait_for_runs(platform, principal, ids, float(timeout), return_when=return_when)
    return {"object": "list", "items": done, "pending": pending}


async def wait_for_runs(platform: Platform, principal: Principal, ids: list[str], timeout: float,
                        *, return_when: Literal["all", "any"] = "all") -> tuple[list[dict], list[dict]]:
    """The runs ``ids`` once all (or any) are terminal or ``timeout`` passes: (terminal
    runs, the others), each in the order of ``ids``."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    ended: list[tuple[str, Any]] = []  # (run id, payload) appended by the hub's threads

    def on_done(topic: str, payload: object) -> None:
        ended.append((topic.removeprefix("run.done:"), payload))
        loop.call_soon_threadsafe(wake.set)

    topics = [f"run.done:{rid}" for rid in ids]
    unsubscribe = [platform.hub.subscribe(topic, on_done) for topic in topics]
    try:
        deadline = time.monotonic() + timeout
        for topic in topics:  # it may have ended before we subscribed
            recent = platform.hub.recent(topic)
            if recent is not None:
                on_done(topic, recent)
        current = await in_thread(run_batches.visible_runs, platform.runs, principal, ids)
        read_at = time.monotonic()
        pending = {rid for rid, run in current.items() if not run_batches.is_terminal(run)}
        seen = 0
        while pending and not (return_when == "any" and len(pending) < len(ids)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if seen == len(ended):
                try:
                    await asyncio.wait_for(wake.wait(), timeout=min(remaining, FALLBACK_POLL_S))
                except TimeoutError:
                    pass
            wake.clear()
            news, seen = ended[seen:], len(ended)
            unread = False
            for rid, payload in news:
                run = payload.get("run") if isinstance(payload, dict) else None
                if rid not in pending:
                    continue
                if isinstance(run, dict):  # this node's event carries the finished run
                    current[rid] = {k: v for k, v in run.items() if k != "inputs"}
                    pending.discard(rid)
                else:
                    unread = True  # another node's, or a status only: read it
            if pending and (unread or time.monotonic() - read_at >= FALLBACK_POLL_S):
                fresh = await in_thread(run_batches.visible_runs, platform.runs, principal, sorted(pending))
                read_at = time.monotonic()
                current.update(fresh)
                pending = {rid for rid in pending if not run_batches.is_terminal(current[rid])}
        return ([current[rid] for rid in ids if rid not in pending],
                [current[rid] for rid in ids if rid in pending])
    finally:
        for stop in unsubscribe:
            stop()

"""The hot request, ``POST /api/v1/runs`` with a JSON body, served in front of FastAPI.

Every run starts with this request, and profiling showed FastAPI's routing, dependency
solving and response plumbing costing more of the server's CPU than creating the run.
This pure-ASGI layer parses the few parameters itself and calls the same code the
FastAPI route calls (``authenticate``, ``parse_json_object``, ``create_run_flow``, the
error envelope); everything else (multipart bodies, every other route, the OpenAPI
description) is FastAPI's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from runyard.api.bodies import MAX_JSON_BYTES, parse_json_object, too_large
from runyard.api.deps import authenticate
from runyard.api.errors import INTERNAL_MESSAGE, error_payload
from runyard.api.guard import send_error, send_json
from runyard.api.runs import create_run_flow
from runyard.services.errors import DomainError, ValidationFailed

log = logging.getLogger(__name__)
RUNS_PATH = "/api/v1/runs"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FastLane:
    def __init__(self, app: Any) -> None:
        self.app = app  # the FastAPI application

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != RUNS_PATH:
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if headers.get("content-type", "").startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            status, content = await self._create_run(scope, receive, headers, state)
        except DomainError as exc:
            # Refused before its body was read (key, size): the connection closes.
            await send_error(send, state, exc, close="body_read" not in state)
            return
        except Exception:
            log.exception("unhandled error on POST %s", RUNS_PATH)
            status = 500
            content = error_payload(state.get("request_id"), "internal_error", INTERNAL_MESSAGE)
        await send_json(send, status, content)

    async def _create_run(self, scope: dict[str, Any], receive: Receive, headers: dict[str, str],
                          state: dict[str, Any]) -> tuple[int, Any]:
        fastapi_state = self.app.state
        platform = fastapi_state.platform
        principal = await authenticate(platform, fastapi_state.rate_limiter, headers.get("authorization", ""), state)
        if int(headers.get("content-length") or 0) > MAX_JSON_BYTES:
            raise too_large(MAX_JSON_BYTES)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        raw = await _read_body(receive)
        state["body_read"] = True
        body = parse_json_object(raw)
        run, status = await create_run_flow(
            platform, principal, body, {}, wait=_float_param(query, "wait"), expand=query.get("expand"),
            idempotency_key=headers.get("idempotency-key"), trigger_header=headers.get("x-runyard-trigger"),
            user_agent=headers.get("user-agent", ""))
        return status, run


def _float_param(query: dict[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        message = "Input should be a valid number, unable to parse string as a number"
        raise ValidationFailed(f"invalid request: {name}: {message}",
                               details={"errors": [{"field": name, "message": message}]}) from None


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if not message.get("more_body", False) and message["type"] == "http.request":
        return message.get("body", b"")  # the common case: the whole body in one message
    body = bytearray()
    while True:
        if message["type"] == "http.disconnect":
            raise ValidationFailed("the client went away before sending the whole body", code="invalid_json")
        body += message.get("body", b"")
        if len(body) > MAX_JSON_BYTES:
            raise too_large(MAX_JSON_BYTES)  # as soon as the limit is passed, not at the end
        if not message.get("more_body", False):
            return bytes(body)
        message = await receive()

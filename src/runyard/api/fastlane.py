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

from runyard.api.bodies import MAX_JSON_BYTES, parse_json_object
from runyard.api.deps import authenticate
from runyard.api.errors import INTERNAL_MESSAGE, domain_error_headers, error_payload
from runyard.api.responses import render_json
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
            extra = None
        except DomainError as exc:
            status, extra = exc.status, domain_error_headers(exc)
            content = error_payload(state.get("request_id"), exc.code, exc.message, exc.details)
        except Exception:
            log.exception("unhandled error on POST %s", RUNS_PATH)
            status, extra = 500, None
            content = error_payload(state.get("request_id"), "internal_error", INTERNAL_MESSAGE)
        await _send_json(send, status, content, extra)

    async def _create_run(self, scope: dict[str, Any], receive: Receive, headers: dict[str, str],
                          state: dict[str, Any]) -> tuple[int, Any]:
        fastapi_state = self.app.state
        platform = fastapi_state.platform
        principal = await authenticate(platform, fastapi_state.rate_limiter, headers.get("authorization", ""), state)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        body = parse_json_object(await _read_body(receive))
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
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValidationFailed("the client went away before sending the whole body", code="invalid_json")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            raise ValidationFailed("request body is too large", code="payload_too_large", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(send: Send, status: int, content: Any, extra: dict[str, str] | None) -> None:
    body = render_json(content)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

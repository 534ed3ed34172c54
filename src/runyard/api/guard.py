"""Every request body: its sender authenticated before it is read, its size limited while it streams.

FastAPI reads a route's body before it solves the route's dependencies, authentication
included, and reads it whole: a client without a key could make the server hold any
number of bytes. This pure-ASGI layer sits in front of FastAPI (behind the fast lane,
which does the same for ``POST /runs`` with a JSON body itself) and, for a request that
has a body:

- answers 413 ``payload_too_large`` at once when ``Content-Length`` is over the route's
  limit, and otherwise as soon as the bytes received pass it;
- authenticates a request under the API prefix before a byte of its body is read (the
  principal is kept in the scope state, where ``deps.get_principal`` takes it from);
- reads a JSON body (``application/json``, ``+json`` or no content type, as FastAPI
  parses them) whole and checks it (``bodies.load_json``: depth, lone surrogates) before
  the route sees it; multipart bodies stream on to the route's form parser, which spools
  files to disk.

Every answer given before the body was read closes the connection, so the server never
reads the rest of a body nobody will use. A route authenticated by something other than
the ``Authorization`` header (a signed URL, a secret in the path) must check that
credential here, before the body, too: ``POST /hooks/{token}`` (a webhook) is looked up by
its token, and held to the hook's rate limit, before its body is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from runyard.api.bodies import MAX_JSON_BYTES, load_json, too_large
from runyard.api.deps import authenticate, authorization_of
from runyard.api.errors import domain_error_headers, error_payload
from runyard.api.offload import in_thread
from runyard.api.responses import render_json
from runyard.services.errors import DomainError, PayloadTooLarge
from runyard.services.runs import MAX_FILE_BYTES
from runyard.services.tool_source import MAX_SOURCE_BYTES
from runyard.services.uploads import MAX_PART
from runyard.services.workspace_files import MAX_WORKSPACE_FILE_BYTES

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

API_PREFIX = "/api/v1/"
# Multipart uploads: a tool's source (with its config) ...
MAX_SOURCE_UPLOAD_BYTES = MAX_SOURCE_BYTES + 1024 * 1024
# ... and a run's input files (each at most MAX_FILE_BYTES).
MAX_UPLOAD_BYTES = 2 * MAX_FILE_BYTES
PARTS_PREFIX = "/api/v1/uploads/"
LOGIN_PATH = "/api/v1/auth/login"  # signing in: the password is the credential
# A file ingested in one request (larger ones go through multipart uploads).
MAX_DATA_FILE_BYTES = MAX_FILE_BYTES
HOOKS_PREFIX = "/hooks/"  # a webhook's URL: authorised by the token in its path
MAX_HOOK_BYTES = MAX_JSON_BYTES  # whatever its content type
WORKSPACE_FILES_PATH = "/api/v1/workspace/files"  # an upload of a workspace file
MAX_FORM_OVERHEAD_BYTES = 1024 * 1024  # a form's own bytes around its file: boundaries, headers, name


def is_hook(method: str, path: str) -> bool:
    """``POST /hooks/{token}``: the route checks the token (and the hook's rate) here, before the body."""
    return method == "POST" and path.startswith(HOOKS_PREFIX) and "/" not in path[len(HOOKS_PREFIX):]


def is_signed_part(method: str, path: str) -> bool:
    """A part of a multipart upload, PUT to its signed URL: authorized by the signature (the
    route checks it before reading the body), not by a bearer key."""
    if method != "PUT" or not path.startswith(PARTS_PREFIX):
        return False
    rest = path[len(PARTS_PREFIX):].split("/")
    return len(rest) == 3 and rest[1] == "parts"


def body_limit(path: str, content_type: bytes, method: str = "POST") -> int:
    if is_signed_part(method, path):
        return MAX_PART
    if path.startswith(HOOKS_PREFIX):
        return MAX_HOOK_BYTES
    # Streamed to the blob store, never held (api.workspace_files; DataMaker's path under /compat/ too).
    if path == WORKSPACE_FILES_PATH or (path.startswith("/compat/") and path.endswith("/workspace/files")):
        return MAX_WORKSPACE_FILE_BYTES + MAX_FORM_OVERHEAD_BYTES
    if path.endswith("/files") and content_type.startswith(b"multipart/form-data"):
        return MAX_DATA_FILE_BYTES
    if not content_type.startswith(b"multipart/form-data"):
        return MAX_JSON_BYTES
    return MAX_SOURCE_UPLOAD_BYTES if path.startswith("/api/v1/tools") else MAX_UPLOAD_BYTES


def _is_json(content_type: bytes) -> bool:
    media = content_type.partition(b";")[0].strip().lower()
    return not media or media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


async def send_json(send: Send, status: int, content: Any, extra: dict[str, str] | None = None) -> None:
    body = render_json(content)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, state: dict[str, Any], exc: DomainError, *, close: bool) -> None:
    """The error envelope; ``close`` when the request's body was not read (the connection ends)."""
    extra = domain_error_headers(exc) or {}
    if close:
        extra = {**extra, "Connection": "close"}
    await send_json(send, exc.status, error_payload(state.get("request_id"), exc.code, exc.message, exc.details),
                    extra)


class BodyGuard:
    def __init__(self, app: Any) -> None:
        self.app = app  # the FastAPI application

    @property
    def state(self) -> Any:
        return self.app.state  # the FastAPI application's (the fast lane reads it through this layer)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = 0
        chunked = False
        content_type = b""
        authorization = b""
        api_key = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else 0  # the server refuses a malformed one
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
        if not length and not chunked:  # no body: nothing to guard
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        path = scope["path"]
        method = scope.get("method", "")
        limit = body_limit(path, content_type, method)
        try:
            if length > limit:
                raise too_large(limit)
            if path.startswith((API_PREFIX, "/compat/")) and not is_signed_part(method, path) \
                    and path != LOGIN_PATH:
                fastapi_state = self.app.state
                await authenticate(fastapi_state.platform, fastapi_state.rate_limiter,
                                   authorization_of(path, authorization.decode("latin-1"),
                                                    api_key.decode("latin-1")), state)
            elif is_hook(method, path):
                state["hook"] = await in_thread(self.app.state.platform.webhooks.admit, path[len(HOOKS_PREFIX):])
        except DomainError as exc:
            await send_error(send, state, exc, close=True)
            return
        if _is_json(content_type) and not is_signed_part(method, path):
            await self._json(scope, receive, send, state, limit)
        else:
            await self._streamed(scope, receive, send, state, limit)

    async def _json(self, scope: dict[str, Any], receive: Receive, send: Send, state: dict[str, Any],
                    limit: int) -> None:
        """Read the body (up to ``limit``), check it, hand it to the route in one message."""
        body = bytearray()
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # nobody to answer
                body += message.get("body", b"")
                if len(body) > limit:
                    raise too_large(limit)
                if not message.get("more_body", False):
                    break
            if body:
                state["json_body"] = load_json(bytes(body))  # parsed once: routes may take it from here
        except DomainError as exc:
            await send_error(send, state, exc, close=isinstance(exc, PayloadTooLarge))
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return await receive()  # a disconnect, for routes that watch for one
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _streamed(self, scope: dict[str, Any], receive: Receive, send: Send, state: dict[str, Any],
                        limit: int) -> None:
        """Pass the body through as it comes; past ``limit``, answer 413 and drop the route's answer."""
        received = 0
        started = False
        answered = False

        async def counted() -> dict[str, Any]:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exc = too_large(limit)
                    if not started and not answered:
                        answered = True
                        await send_error(send, state, exc, close=True)
                    raise exc
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out already; whatever the route made of the error is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except PayloadTooLarge:
            if not answered:
                raise

"""A run, live, over a WebSocket: ``POST /runs/{id}/connect`` signs a URL, ``/runs/{id}/live`` serves it.

The socket sends JSON messages, each with a ``type``:

- ``status``: the run (``run``) whenever its status changes, first on connecting;
- ``log``: new log text (``text``, whole lines until the run ends) and the byte ``offset``
  after it (``GET /runs/{id}/logs?offset=`` reads on from there);
- ``progress``: the run's ``progress`` when it changes;
- ``trace``: a trace ``event`` a tool run recorded; a workflow run's ``step`` when a
  step's status changes (the items of ``GET /runs/{id}/trace``);
- ``input_accepted`` (with the ``run``) or ``error`` (the error envelope's fields) in
  answer to a message sent;
- ``end``: the run's final ``status`` and ``run``; the server then closes (1000).

It takes ``{"type": "input", "value": ..., "step_id"?: ...}``: the same call, with the
same checks, as ``POST /runs/{id}/input`` (a viewer's URL watches but cannot answer), as
the token that made the URL, read afresh (a revoked one is refused).

The token is read again every ``RECHECK_TOKEN_S`` while the socket is open: once it is
revoked or expired (or the run is no longer visible to it), the socket sends an ``error``
and closes with 1008 (policy violation).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, WebSocket

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.errors import error_payload
from runyard.api.ingest import base_url
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.responses import JSON
from runyard.schemas.run_details import RunConnection
from runyard.services.access import Principal
from runyard.services.errors import DomainError, ValidationFailed
from runyard.services.runs import TERMINAL_STATUSES
from runyard.wiring import Platform

router = APIRouter(tags=["runs"], responses=error_responses(*AUTHENTICATED))
ws_router = APIRouter()  # authorized by the signed URL, not by a key

REREAD_S = 0.5  # with no event, the run is read again this often (progress has no event)
MIN_ROW_READ_S = 0.2  # a log growing fast wakes the stream often: the row is read at most this often
RECHECK_TOKEN_S = 2.0  # an open socket reads its token again this often: revoking it closes the socket
READ_CHUNK = 1 << 20
MAX_MESSAGE_CHARS = 2 << 20  # an input's value is at most 1 MB of JSON (services.workflow_runs)


@router.post("/runs/{run_id}/connect", response_model=RunConnection, responses=error_responses(404))
async def connect_run(run_id: str, request: Request, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """A signed WebSocket URL to follow the run live (and answer it when it waits for
    input), good for a minute; it acts as the key that asked for it."""
    return await in_thread(platform.live_links.connect, principal, run_id, base_url(request))


@ws_router.websocket("/runs/{run_id}/live")
async def run_live(websocket: WebSocket, run_id: str, sig: str | None = None) -> None:
    platform: Platform = websocket.app.state.platform
    try:
        principal = await in_thread(platform.live_links.open, run_id, sig)
    except DomainError as exc:
        await _refuse(websocket, exc)
        return
    await websocket.accept()
    await LiveSession(platform, principal, run_id, websocket).serve()


async def _refuse(websocket: WebSocket, exc: DomainError) -> None:
    """Answer the handshake with the error envelope and its status when the server can
    (the ASGI denial-response extension), else close before accepting (a 403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = error_payload(None, exc.code, exc.message, exc.details)
        await websocket.send_denial_response(JSON(body, status_code=exc.status))
    else:
        await websocket.close(code=1008, reason=exc.code)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(READ_CHUNK)
    except FileNotFoundError:
        return b""


def _whole_lines(chunk: bytes, final: bool) -> int:
    """How much of ``chunk`` to send: whole lines, so a message never splits a UTF-8
    character (all of it once the run ended and the log is read to its end)."""
    if final and len(chunk) < READ_CHUNK:
        return len(chunk)
    cut = chunk.rfind(b"\n") + 1
    if cut == 0 and len(chunk) == READ_CHUNK:  # a line longer than a read: cut before its last character
        cut = len(chunk)
        while cut > 0 and (chunk[cut - 1] & 0xC0) == 0x80:
            cut -= 1
        cut = max(cut - 1, 1) if chunk[cut - 1] >= 0xC0 else cut
    return cut


class LiveSession:
    """One connection: a task streaming the run, a task reading what the client sends."""

    def __init__(self, platform: Platform, principal: Principal, run_id: str, websocket: WebSocket) -> None:
        self.platform = platform
        self.principal = principal
        self.run_id = run_id
        self.websocket = websocket
        self.send_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.ended = False
        self.refused = False  # the token was revoked (or the run hidden) while the socket was open
        self.log_offset = 0
        self.trace_offset = 0
        self.status: str | None = None
        self.progress: Any = None
        self.steps: dict[tuple[str, int | None], str] = {}

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_text(json.dumps(message, default=str))

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()

        def woken(_topic: str, _payload: Any) -> None:
            loop.call_soon_threadsafe(self.wake.set)

        def done(_topic: str, _payload: Any) -> None:
            self.ended = True
            loop.call_soon_threadsafe(self.wake.set)

        hub = self.platform.hub
        unsubscribe = [hub.subscribe(f"run.log:{self.run_id}", woken), hub.subscribe(f"run.done:{self.run_id}", done)]
        streaming = asyncio.create_task(self._stream())
        receiving = asyncio.create_task(self._receive())
        try:
            finished, _ = await asyncio.wait({streaming, receiving}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for stop in unsubscribe:
                stop()
            for task in (streaming, receiving):
                task.cancel()
            await asyncio.gather(streaming, receiving, return_exceptions=True)
        if streaming in finished and streaming.exception() is None:
            try:
                await self.websocket.close(code=1008 if self.refused else 1000)
            except RuntimeError:
                pass  # the client left first

    # -- the run, as it goes ---------------------------------------------------------------
    async def _stream(self) -> None:
        last_read = 0.0
        token_read = time.monotonic()  # read when the socket opened
        run: dict[str, Any] = {}
        while True:
            self.wake.clear()
            if not run or self.ended or time.monotonic() - last_read >= MIN_ROW_READ_S:
                try:
                    if time.monotonic() - token_read >= RECHECK_TOKEN_S:
                        self.principal = await in_thread(self.platform.tokens.principal_of_token,
                                                         self.principal.workspace_id, self.principal.token_id)
                        token_read = time.monotonic()
                    run = await in_thread(self.platform.runs.get, self.principal, self.run_id)
                except DomainError as exc:  # the token revoked, the run deleted or hidden meanwhile
                    await self.send({"type": "error", "error": _error(exc)})
                    self.refused = True
                    return
                last_read = time.monotonic()
                await self._status_and_progress(run)
            terminal = run["status"] in TERMINAL_STATUSES
            more = await self._log(terminal)
            if run["type"] == "workflow":
                await self._steps()
            else:
                more = await self._trace(terminal) or more
            if terminal and not more:
                await self.send({"type": "end", "status": run["status"], "run": run})
                return
            if more:
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), REREAD_S)
            except TimeoutError:
                last_read = 0.0  # nothing heard: read the run (its progress) again

    async def _status_and_progress(self, run: dict[str, Any]) -> None:
        if run["status"] != self.status:
            self.status = run["status"]
            await self.send({"type": "status", "status": run["status"], "run": run})
        if run.get("progress") is not None and run["progress"] != self.progress:
            self.progress = run["progress"]
            await self.send({"type": "progress", "progress": run["progress"]})

    async def _log(self, final: bool) -> bool:
        """Send the log's new lines; whether a full read came back (more may follow at once)."""
        chunk = await in_thread(_read_from, self.platform.runs.files.log(self.run_id), self.log_offset)
        cut = _whole_lines(chunk, final)
        if cut > 0:
            self.log_offset += cut
            await self.send({"type": "log", "text": chunk[:cut].decode("utf-8", errors="replace"),
                             "offset": self.log_offset})
        return len(chunk) == READ_CHUNK

    async def _trace(self, final: bool) -> bool:
        chunk = await in_thread(_read_from, self.platform.runs.files.trace(self.run_id), self.trace_offset)
        cut = chunk.rfind(b"\n") + 1  # events are whole lines; one cut short by a crash is left out
        for line in chunk[:cut].decode("utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            await self.send({"type": "trace", "event": event})
        self.trace_offset += cut
        return len(chunk) == READ_CHUNK and cut > 0

    async def _steps(self) -> None:
        steps = await in_thread(self.platform.workflow_runs.trace, self.principal, self.run_id)
        for step in steps:
            key = (step["step_id"], step.get("item_index"))
            if self.steps.get(key) != step["status"]:
                self.steps[key] = step["status"]
                await self.send({"type": "step", "step": step})

    # -- what the client sends -------------------------------------------------------------
    async def _receive(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._reply_error(ValidationFailed("send JSON text messages", code="invalid_message"))
                continue
            try:
                reply = await self._answer(text)
            except DomainError as exc:
                await self._reply_error(exc)
                continue
            await self.send(reply)

    async def _answer(self, text: str) -> dict[str, Any]:
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValidationFailed(f"a message is at most {MAX_MESSAGE_CHARS} characters", code="invalid_message")
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise ValidationFailed("a message is a JSON object", code="invalid_message") from exc
        if not isinstance(body, dict) or body.get("type") != "input":
            raise ValidationFailed('the only message taken is {"type": "input", "value": ..., "step_id"?: ...}',
                                   code="invalid_message", details={"allowed_types": ["input"]})
        step_id = body.get("step_id")
        if "value" not in body or not (step_id is None or isinstance(step_id, str)):
            raise ValidationFailed("an input message has a value (and optionally a step_id string)",
                                   code="invalid_message", details={"field": "value"})
        # As the token is now: revoked since the URL was made, it answers nothing.
        principal = await in_thread(self.platform.tokens.principal_of_token, self.principal.workspace_id,
                                    self.principal.token_id)
        run = await in_thread(self.platform.workflow_runs.send_input, principal, self.run_id, body["value"], step_id)
        self.wake.set()
        return {"type": "input_accepted", "run": run}

    async def _reply_error(self, exc: DomainError) -> None:
        await self.send({"type": "error", "error": _error(exc)})


def _error(exc: DomainError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details, "status": exc.status}

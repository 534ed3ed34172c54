"""The MCP server itself: tools/list, tools/call (a run, followed to its end with progress
notifications), and run logs and artifacts as resources. What it serves comes from a
``Backend`` chosen per request: the services in process on the HTTP endpoint (bound to
the request's key), a runyard server through the SDK over stdio."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

SERVER_NAME = "runyard"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
# How often a followed run is re-read when nothing woke the follower earlier.
FOLLOW_INTERVAL_S = 0.5
# MCP's "resource not found" (the specification's code), with runyard's code in ``data``.
RESOURCE_NOT_FOUND = -32002
LOGS_TEMPLATE = "runyard://runs/{run_id}/logs"
ARTIFACT_TEMPLATE = "runyard://runs/{run_id}/artifacts/{path}"
_LOGS_URI = re.compile(r"^runyard://runs/(?P<run_id>[A-Za-z0-9_-]{1,64})/logs$")
_ARTIFACT_URI = re.compile(r"^runyard://runs/(?P<run_id>[A-Za-z0-9_-]{1,64})/artifacts/(?P<path>.+)$")
RUN_ID_META = "runyard/run_id"


class BackendError(Exception):
    """A refusal from runyard (its stable error code and message): the tool is unknown or
    hidden, the inputs are invalid, the key may not, the run is not found."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class Backend(Protocol):
    """What the MCP server needs of runyard, as one key sees it. Methods raise
    ``BackendError`` for a refusal."""

    async def list_tools(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the tools the key may call ({name, description, input_schema})."""
        ...

    async def start_run(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]: ...

    async def get_run(self, run_id: str) -> dict[str, Any]: ...

    async def wait_change(self, run_id: str, timeout: float) -> None:
        """Return when the run may have moved on (log, progress, end) or ``timeout`` passed."""
        ...

    async def read_log(self, run_id: str, offset: int) -> bytes: ...

    async def cancel_run(self, run_id: str) -> None: ...

    async def read_artifact(self, run_id: str, path: str) -> tuple[bytes, str | None]: ...


BackendOf = Callable[[ServerRequestContext[Any, Any]], Backend]


def build_server(backend_of: BackendOf, *, version: str = "") -> Server[Any]:
    """The MCP server; ``backend_of`` gives the backend for a request's context."""

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        backend = backend_of(ctx)
        try:
            tools, next_cursor = await backend.list_tools(params.cursor if params else None)
        except BackendError as exc:
            # A refusal of the request (a bad cursor) or runyard out of reach (stdio).
            raise MCPError(types.INTERNAL_ERROR if exc.status is None else types.INVALID_PARAMS, exc.message,
                           {"code": exc.code}) from exc
        return types.ListToolsResult(
            tools=[types.Tool(name=t["name"], description=t.get("description") or None,
                              input_schema=t["input_schema"]) for t in tools],
            next_cursor=next_cursor)

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        return await _call_tool(backend_of(ctx), ctx, params.name, params.arguments or {})

    async def list_resources(ctx: ServerRequestContext[Any, Any],
                             params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        # Every run has its resources: they are named by the templates, not enumerated.
        return types.ListResourcesResult(resources=[])

    async def list_templates(ctx: ServerRequestContext[Any, Any],
                             params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(uri_template=LOGS_TEMPLATE, name="run-logs", mime_type="text/plain",
                                   description="A run's log (stdout and stderr) as text"),
            types.ResourceTemplate(uri_template=ARTIFACT_TEMPLATE, name="run-artifact",
                                   description="A file a run saved (text when it is text, else base64)"),
        ])

    async def read_resource(ctx: ServerRequestContext[Any, Any],
                            params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await _read_resource(backend_of(ctx), str(params.uri))

    return Server(SERVER_NAME, version=version,
                  instructions="runyard tools: each call is a durable run; its log and files are "
                               "resources at runyard://runs/{run_id}/logs and .../artifacts/{path}.",
                  on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
                  on_list_resource_templates=list_templates, on_read_resource=read_resource)


def _error_result(code: str, message: str, run: dict[str, Any] | None = None) -> types.CallToolResult:
    error = {"code": code, "message": message}
    body: dict[str, Any] = {"error": error}
    if run is not None:
        body.update(run_id=run["id"], status=run["status"])
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(body))], structured_content=body,
        is_error=True, meta={RUN_ID_META: run["id"]} if run is not None else None)


def _result(run: dict[str, Any]) -> types.CallToolResult:
    output = run.get("output")
    # Structured content is an object: any other output is carried as {"result": ...}.
    structured = output if isinstance(output, dict) else {"result": output}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(output, default=str))],
        structured_content=structured, meta={RUN_ID_META: run["id"]})


async def _call_tool(backend: Backend, ctx: ServerRequestContext[Any, Any], name: str,
                     arguments: dict[str, Any]) -> types.CallToolResult:
    try:
        run = await backend.start_run(name, arguments)
    except BackendError as exc:
        return _error_result(exc.code, exc.message)
    try:
        run = await _follow(backend, ctx, run)
    except anyio.get_cancelled_exc_class():
        # The client cancelled the request (notifications/cancelled) or went away: the run
        # is not wanted any more.
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            try:
                await backend.cancel_run(run["id"])
            except BackendError:
                pass
        raise
    if run["status"] != "succeeded":
        error = run.get("error") or {}
        return _error_result(error.get("type") or run["status"],
                             error.get("message") or f"the run ended {run['status']}", run)
    return _result(run)


async def _follow(backend: Backend, ctx: ServerRequestContext[Any, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Wait for the run's end, telling the client (when it asked for progress) each time
    its status, reported progress or log changes."""
    run_id = run["id"]
    meta: dict[str, Any] = dict(ctx.meta or {})
    wants_progress = meta.get("progressToken", meta.get("progress_token")) is not None
    offset, lines, step = 0, 0, 0
    last: tuple[Any, ...] | None = None
    last_line = ""
    while True:
        if wants_progress:
            chunk = await backend.read_log(run_id, offset)
            whole = chunk[:chunk.rfind(b"\n") + 1] if run["status"] not in TERMINAL_STATUSES else chunk
            if whole:
                offset += len(whole)
                text = whole.decode("utf-8", errors="replace").splitlines()
                lines += len(text)
                last_line = next((line for line in reversed(text) if line.strip()), last_line)
            progress = run.get("progress") or {}
            state = (run["status"], progress.get("fraction"), progress.get("message"), lines)
            if state != last:
                last, step = state, step + 1
                await ctx.session.report_progress(step, None, _progress_message(run["status"], progress,
                                                                                lines, last_line))
        if run["status"] in TERMINAL_STATUSES:
            return run
        await backend.wait_change(run_id, FOLLOW_INTERVAL_S)
        run = await backend.get_run(run_id)


def _progress_message(status: str, progress: dict[str, Any], lines: int, last_line: str) -> str:
    parts = [status]
    fraction = progress.get("fraction")
    if isinstance(fraction, int | float):
        parts.append(f"{fraction:.0%}")
    if progress.get("message"):
        parts.append(str(progress["message"]))
    if lines:
        parts.append(f"{lines} log line{'s' if lines != 1 else ''}: {last_line[:200]}")
    return " · ".join(parts)


async def _read_resource(backend: Backend, uri: str) -> types.ReadResourceResult:
    try:
        if match := _LOGS_URI.match(uri):
            data = await backend.read_log(match["run_id"], 0)
            return types.ReadResourceResult(contents=[types.TextResourceContents(
                uri=uri, mime_type="text/plain", text=data.decode("utf-8", errors="replace"))])
        if match := _ARTIFACT_URI.match(uri):
            path = unquote(match["path"])
            data, content_type = await backend.read_artifact(match["run_id"], path)
            return types.ReadResourceResult(contents=[_contents(uri, data, content_type)])
    except BackendError as exc:
        raise MCPError(RESOURCE_NOT_FOUND if exc.status == 404 else types.INVALID_PARAMS, exc.message,
                       {"code": exc.code, "uri": uri}) from exc
    raise MCPError(RESOURCE_NOT_FOUND, f"no resource at {uri!r}: runyard serves {LOGS_TEMPLATE} and "
                   f"{ARTIFACT_TEMPLATE}", {"code": "resource_not_found", "uri": uri})


def _contents(uri: str, data: bytes, content_type: str | None) -> types.TextResourceContents | types.BlobResourceContents:
    textual = content_type is not None and (content_type.startswith("text/") or content_type in (
        "application/json", "application/xml", "application/x-ndjson", "application/yaml"))
    if textual:
        try:
            return types.TextResourceContents(uri=uri, mime_type=content_type, text=data.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return types.BlobResourceContents(uri=uri, mime_type=content_type or "application/octet-stream",
                                      blob=base64.b64encode(data).decode("ascii"))

"""``runyard mcp``: the MCP server over stdio, for desktop clients that launch a command.

It holds no server secrets: it reaches a runyard server through the SDK with the key and
URL the CLI is configured with, so it offers exactly what that key may do there (the
server decides). Runs it starts have trigger ``mcp``.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from runyard import __version__
from runyard.mcp_server.core import BackendError, build_server
from runyard.sdk import AsyncClient
from runyard.sdk.errors import APIConnectionError, APIStatusError

# A client-side follow re-reads the run this often (the HTTP endpoint is woken by events).
POLL_S = 0.5
TRIGGER = "mcp"
# As services.mcp_tools: larger artifacts are downloaded, not read as a resource.
MAX_RESOURCE_BYTES = 8 * 1024 * 1024
# The roles that may start runs, hence call tools.
CALLING_ROLES = ("member", "admin")


def _refusal(exc: Exception) -> BackendError:
    if isinstance(exc, APIStatusError):
        return BackendError(exc.code, exc.message, exc.status)
    return BackendError("server_unreachable", f"the runyard server could not be reached: {exc}")


class RemoteBackend:
    """The MCP server's view of a runyard server reached through the SDK."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (APIStatusError, APIConnectionError) as exc:
            raise _refusal(exc) from exc

    async def list_tools(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The key's tools as the server lists them (a restricted key's only), none for a
        key whose role cannot start runs (the server's rule: services.mcp_tools)."""
        async def every() -> list[dict[str, Any]]:
            me = await self.client.users.me()
            if me.token_role not in CALLING_ROLES:
                return []
            return [{"name": t.name, "description": t.description or "", "input_schema": t.input_schema or
                     {"type": "object"}} async for t in self.client.tools.list(sort="name", order="asc")]
        return await self._call(every()), None

    async def start_run(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        run = await self._call(self.client.runs.create(tool, arguments))
        return run.model_dump(mode="json")

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return (await self._call(self.client.runs.get(run_id))).model_dump(mode="json")

    async def wait_change(self, run_id: str, timeout: float) -> None:
        await anyio.sleep(min(timeout, POLL_S))

    async def read_log(self, run_id: str, offset: int) -> bytes:
        text = await self._call(self.client.runs.logs(run_id, offset=offset))
        return text.encode("utf-8")

    async def cancel_run(self, run_id: str) -> None:
        await self._call(self.client.runs.cancel(run_id))

    async def read_artifact(self, run_id: str, path: str) -> tuple[bytes, str | None]:
        # The listing gives the content type (and the same not-found answers as the server).
        listed = {item.path: item for item in await self._call(self.client.runs.artifacts.list(run_id))}
        if path not in listed:
            raise BackendError("artifact_not_found", f"artifact {path!r} not found", 404)
        if (listed[path].size or 0) > MAX_RESOURCE_BYTES:
            raise BackendError("resource_too_large", f"artifact {path!r} is {listed[path].size} bytes, more than an "
                               f"MCP resource read carries ({MAX_RESOURCE_BYTES}); download it with "
                               "`runyard runs artifacts`", 413)
        data = await self._call(self.client.runs.artifacts.download(run_id, path))
        return data, listed[path].content_type


async def serve_stdio(*, api_key: str, base_url: str | None) -> None:
    """Serve MCP on stdin/stdout until the client closes them."""
    async with AsyncClient(api_key=api_key, base_url=base_url,
                           default_headers={"X-Runyard-Trigger": TRIGGER}) as client:
        backend = RemoteBackend(client)

        def backend_of(_ctx: ServerRequestContext[Any, Any]) -> RemoteBackend:
            return backend

        server = build_server(backend_of, version=__version__)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

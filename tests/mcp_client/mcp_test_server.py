"""A real MCP server built with the official SDK (mcp 2: ``MCPServer``, once FastMCP), served
over streamable HTTP (or SSE, argv[2]) on the loopback port given as argv[1]: a few tools, one slow, one that
raises, one that kills its own process mid-call, one that tells which Authorization header
it was sent."""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

server = MCPServer("testtools")


class Sum(BaseModel):
    total: int


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> Sum:
    return Sum(total=a + b)


@server.tool(description="Sleep for seconds, then answer.")
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@server.tool(description="Always fails.")
def boom() -> str:
    raise ToolError("boom went the tool")


@server.tool(description="Kills the server mid-call.")
def die() -> str:
    os._exit(3)


@server.tool(description="The Authorization header this call came with.")
def whoami(ctx: Context) -> str:
    request = ctx.request_context.request
    return str(request.headers.get("authorization")) if request is not None else "none"


if __name__ == "__main__":
    # argv[2]: "sse" for the older HTTP+SSE transport (default streamable HTTP)
    transport = sys.argv[2] if len(sys.argv) > 2 else "streamable-http"
    server.run(transport, host="127.0.0.1", port=int(sys.argv[1]))

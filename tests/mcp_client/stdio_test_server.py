"""A stdio MCP server built with the official SDK, started by runyard from a ``command``
connection (tests/mcp_client/test_mcp_stdio.py): tools that show which process answers, what
it may read and reach, and one that makes it die mid-call."""

from __future__ import annotations

import os
import socket
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("stdio-test")


@server.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two numbers."""
    return {"total": a + b}


@server.tool()
def pid() -> dict[str, int]:
    """This server's process id."""
    return {"pid": os.getpid()}


@server.tool()
def read(path: str) -> str:
    """The first bytes of a file, or why it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(64).hex()
    except OSError as exc:
        return f"refused: {exc.strerror}"


@server.tool()
def env(name: str) -> str:
    """An environment variable's value."""
    return os.environ.get(name, "")


@server.tool()
def open_socket() -> str:
    """Whether this process may make a network socket."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    except OSError as exc:
        return f"refused: {exc.strerror}"
    return "made"


@server.tool()
def write_home() -> str:
    """Writes a file in its own work dir."""
    path = os.path.join(os.environ["HOME"], "note.txt")
    with open(path, "w") as fh:
        fh.write("ok")
    return path


@server.tool()
def slow(seconds: float) -> str:
    """Sleeps (a hanging call)."""
    time.sleep(seconds)
    return "woke"


@server.tool()
def die() -> str:
    """Exits mid-call."""
    os._exit(3)


if __name__ == "__main__":
    server.run()

"""``runyard mcp``: runyard's tools as an MCP server on stdin/stdout (for desktop clients)."""

from __future__ import annotations

from ._context import resolve
from ._output import Exit, fail


def mcp() -> None:
    """Serve this key's runyard tools over MCP on stdin/stdout (Claude Desktop and other
    clients that launch a command). Uses the profile's (or RUNYARD_BASE_URL's and
    RUNYARD_API_KEY's) server and key; each tool call is a run with trigger mcp."""
    base_url, api_key, profile_name = resolve()
    if not api_key:
        raise fail(f"no API key: run `runyard login` (profile {profile_name!r}), set RUNYARD_API_KEY or pass "
                   "--api-key", code=Exit.ERROR)
    try:
        import anyio

        from runyard.mcp_server.stdio import serve_stdio
    except ImportError as exc:
        raise fail(f"`runyard mcp` needs the MCP SDK ({exc.name or exc} is missing): "
                   "pip install 'runyard[mcp]'", code=Exit.ERROR) from exc
    anyio.run(lambda: serve_stdio(api_key=api_key, base_url=base_url))

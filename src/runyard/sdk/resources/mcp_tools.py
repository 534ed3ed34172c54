"""``client.mcp_tools``: the tools of the workspace's verified MCP connections, by alias
``mcp_<server>_<tool>``, and runs of them (type ``mcp_tool``) made by a worker node with the
connection's credentials."""

from __future__ import annotations

import builtins
from typing import Any

from .._base import RequestOptions, Timeout
from .._endpoint import Plan, Send, endpoint
from ..models import McpTool, Run
from ._resource import AsyncResource, SyncResource, seg
from .runs import MAX_CREATE_WAIT, _apply_wait, _check_failures, _wait_many

__all__ = ["McpTools", "AsyncMcpTools"]


class McpToolsAPI:
    """``client.mcp_tools``, written once for :class:`McpTools` and :class:`AsyncMcpTools`."""

    @endpoint
    def list(self, *, timeout: Timeout = None) -> Plan[builtins.list[McpTool]]:
        """Every tool the workspace's MCP connections listed at their last verify."""
        response = yield Send(RequestOptions("GET", "/mcp-tools", timeout=timeout))
        return [McpTool.model_validate(item) for item in response.json()["items"]]

    @endpoint
    def execute(self, alias: str, params: dict[str, Any] | None = None, *, wait: bool | float = True,
                raise_on_failure: bool = False, timeout: Timeout = None) -> Plan[Run]:
        """Call the tool ``alias`` with ``params``: a run of type ``mcp_tool``. ``wait``: True
        waits for its end (however long), a number for at most that many seconds, False not
        at all; :class:`~runyard.RunFailedError` for a failed run when ``raise_on_failure``."""
        params_q: dict[str, Any] = {}
        first_wait = MAX_CREATE_WAIT if wait is True else (float(wait) if wait else None)
        timeout = _apply_wait(params_q, first_wait, timeout)
        opts = RequestOptions("POST", f"/mcp-tools/{seg(alias)}/execute", params=params_q,
                              json={"parameters": dict(params or {})}, idempotency_key="", timeout=timeout)
        run = Run.model_validate((yield Send(opts)).json())
        if wait is True and not run.is_terminal:
            run = (yield from _wait_many([run.id], None, 0.5))[0]
        _check_failures([run], raise_on_failure)
        return run


class McpTools(McpToolsAPI, SyncResource):
    """``client.mcp_tools``: MCP servers' tools by alias, executed as runs."""


class AsyncMcpTools(McpToolsAPI, AsyncResource):
    """``client.mcp_tools`` of :class:`~runyard.AsyncClient` (coroutines)."""

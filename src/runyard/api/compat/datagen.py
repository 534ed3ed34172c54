"""DataGen on the wire: ``POST /api/tools/execute``, the one path the published
``datagen-python-sdk`` (0.1.1, ``DatagenClient.execute_tool``) calls, served from runyard's
services so that client works unchanged with ``base_url=http://<runyard>/compat/datagen`` and
a runyard key as its ``api_key`` (sent as ``X-API-Key``: api.deps.authorization_of).

``tool_alias_name`` names an MCP tool by alias (``mcp_<connection>_<tool>``, as
``GET /api/v1/mcp-tools`` lists them: a run of type ``mcp_tool``, services.mcp_client) or a
runyard tool by name or id (a run of its latest version, trigger ``api``). The request
answers when the run ends (at most ``WAIT_S``), in the shape the client reads:

- ``{"success": true, "data": {"success": true, "result": <the run's output>, ...}}``;
- a run that failed, was cancelled, timed out or was still going after ``WAIT_S`` is a tool
  failure, ``data.success`` false with ``error`` saying why — the client raises
  ``DatagenToolError`` and, unlike an HTTP error, does not retry it (a retry would start
  the tool again); ``data.run_id`` names the run either way;
- a refused request (unknown alias or tool, invalid parameters, a key that may not run
  tools) is an HTTP error with runyard's envelope and ``success: false`` — the client
  raises ``DatagenAuthError`` on 401/403 and ``DatagenHttpError`` otherwise.

Mounted outside ``/api/v1`` and kept out of runyard's OpenAPI: the contract is DataGen's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from runyard.api.compat.shaped_errors import error_shaped_route
from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.errors import error_payload
from runyard.api.offload import in_thread
from runyard.api.responses import JSON
from runyard.api.runs import MAX_WAIT_S
from runyard.api.waiting import wait_for_run
from runyard.services.access import Principal
from runyard.services.errors import NotFound
from runyard.services.runs import SUCCEEDED, TERMINAL_STATUSES
from runyard.wiring import Platform

PREFIX = "/compat/datagen"
MCP_ALIAS_PREFIX = "mcp_"  # DataGen's (and runyard's) naming of an MCP server's tools
# How long a request holds for its run's end: the client itself gives up after its own
# ``timeout`` (30 s by default), so longer tools want a larger client timeout.
WAIT_S = MAX_WAIT_S


def datagen_error(request: Request, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> JSON:
    body = {"success": False, **error_payload(getattr(request.state, "request_id", None), code, message, details)}
    return JSON(body, status_code=status, headers=headers)


DatagenRoute = error_shaped_route(datagen_error)


router = APIRouter(route_class=DatagenRoute, include_in_schema=False)


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tool_alias_name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None


def start(platform: Platform, principal: Principal, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A run of the MCP tool ``name`` names, else of the runyard tool of that name. An
    ``mcp_…`` name no MCP server lists is ``mcp_tool_not_found`` unless a runyard tool has
    that name (tool names may begin ``mcp_`` too)."""
    if name.startswith(MCP_ALIAS_PREFIX):
        try:
            return platform.mcp_client.execute(principal, name, parameters)
        except NotFound as missing:
            try:
                run, _ = platform.runs.create(principal, tool=name, inputs=parameters, trigger="api")
            except NotFound:
                raise missing from None
            return run
    run, _ = platform.runs.create(principal, tool=name, inputs=parameters, trigger="api")
    return run


def outcome(run: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of an answer: the run's output, or why there is none."""
    base = {"run_id": run["id"], "status": run["status"]}
    if run["status"] == SUCCEEDED:
        return {"success": True, "result": run.get("output"), **base}
    if run["status"] not in TERMINAL_STATUSES:
        return {"success": False, "error": f"run {run['id']} has not ended (status {run['status']}); "
                                           f"follow it at /api/v1/runs/{run['id']}", **base}
    error = run.get("error") or {}
    kind = error.get("type") or run["status"]
    message = error.get("message") or f"the run ended {run['status']}"
    return {"success": False, "error": f"{kind}: {message}", **base}


@router.post("/api/tools/execute")
async def execute_tool(body: ExecuteBody, platform: PlatformDep, principal: PrincipalDep) -> JSON:
    """Run an MCP tool by alias or a runyard tool by name; answer when the run ends."""
    run = await in_thread(start, platform, principal, body.tool_alias_name, body.parameters or {})
    if run["status"] not in TERMINAL_STATUSES:
        run = await wait_for_run(platform, principal, run["id"], WAIT_S)
    return JSON({"success": True, "data": outcome(run)})

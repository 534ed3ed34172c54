"""/mcp-tools — runyard as an MCP client: the tools of verified ``mcp`` connections by alias,
and runs of them (type ``mcp_tool``, trigger ``mcp``; services.mcp_client)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.api.runs import MAX_WAIT_S, _check_wait
from runyard.api.waiting import wait_for_run
from runyard.schemas.mcp_client import McpToolExecute, McpToolList
from runyard.schemas.runs import RunView
from runyard.services.runs import TERMINAL_STATUSES

router = APIRouter(tags=["mcp-tools"], responses=error_responses(*AUTHENTICATED))


@router.get("/mcp-tools", response_model=McpToolList)
async def list_mcp_tools(platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Every tool the workspace's verified MCP connections listed at their last verify, by alias."""
    return {"object": "list", "items": await in_thread(platform.mcp_client.catalog, principal)}


@router.post("/mcp-tools/{alias}/execute", status_code=201, response_model=RunView,
             responses=error_responses(404))
async def execute_mcp_tool(alias: str, body: McpToolExecute, platform: PlatformDep, principal: PrincipalDep,
                           wait: float | None = Query(None, json_schema_extra={"minimum": 0, "maximum": MAX_WAIT_S},
                                                      description="seconds to wait for the run's end")) -> dict:
    """A run (type ``mcp_tool``, trigger ``mcp``) calling the tool through a worker node."""
    _check_wait(wait)
    run = await in_thread(platform.mcp_client.execute, principal, alias, body.parameters)
    if wait and run["status"] not in TERMINAL_STATUSES:
        run = await wait_for_run(platform, principal, run["id"], wait)
    return run

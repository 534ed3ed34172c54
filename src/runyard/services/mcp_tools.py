"""What the MCP endpoint offers a principal: the tools it may call (name, description and
input schema as stored), runs of them started with trigger ``mcp``, and the logs and
artifacts of runs it may read. Every decision about who may do what is made here or in
the services this one calls; ``runyard.mcp_server`` only translates to and from MCP."""

from __future__ import annotations

from typing import Any

from runyard.services.access import Principal
from runyard.services.errors import PayloadTooLarge
from runyard.services.pagination import Page
from runyard.services.runs import CREATE_RUNS, RunService
from runyard.services.tools import ToolService

# Calling an MCP tool starts a run: a key that may not start runs is offered no tools.
CALL_TOOLS = CREATE_RUNS
CATALOG_PAGE = 100
# A resource read answers in one JSON message (base64 for bytes): larger artifacts are
# downloaded through GET /runs/{id}/artifacts/{path} instead.
MAX_RESOURCE_BYTES = 8 * 1024 * 1024


def catalog_entry(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as MCP lists it: the input schema exactly as stored."""
    return {"name": tool["name"], "description": tool.get("description") or "",
            "input_schema": tool["input_schema"]}


class McpTools:
    def __init__(self, tools: ToolService, runs: RunService) -> None:
        self.tools = tools
        self.runs = runs

    def catalog(self, principal: Principal, cursor: str | None = None) -> Page:
        """The tools ``principal`` may call, by name: a restricted key's tools only, none
        for a key whose role cannot start runs."""
        if not CALL_TOOLS.allows(principal):
            return Page([], None, None)
        page = self.tools.list_for(principal, sort="name", order="asc", cursor=cursor, limit=CATALOG_PAGE)
        return Page([catalog_entry(tool) for tool in page.items], page.next_cursor, None)

    def start(self, principal: Principal, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """A run of ``tool`` (trigger ``mcp``); a tool hidden from a restricted key is not
        found, as for every other front end."""
        run, _ = self.runs.create(principal, tool=tool, inputs=arguments, trigger="mcp")
        return run

    def run(self, principal: Principal, run_id: str) -> dict[str, Any]:
        return self.runs.get(principal, run_id)

    def cancel(self, principal: Principal, run_id: str) -> dict[str, Any]:
        return self.runs.cancel(principal, run_id)

    def log(self, principal: Principal, run_id: str, offset: int = 0, limit: int | None = None) -> bytes:
        """The run's log from byte ``offset`` (``limit`` bytes at most)."""
        self.runs.visible_row(principal, run_id)
        try:
            with open(self.runs.files.log(run_id), "rb") as fh:
                fh.seek(offset)
                return fh.read() if limit is None else fh.read(limit)
        except FileNotFoundError:
            return b""

    def artifact(self, principal: Principal, run_id: str, path: str) -> tuple[bytes, str | None]:
        """An artifact's bytes and content type, up to ``MAX_RESOURCE_BYTES``."""
        row = self.runs.artifact(principal, run_id, path)
        blob = self.runs.files.blob(row.blob_key)
        size = blob.stat().st_size
        if size > MAX_RESOURCE_BYTES:
            raise PayloadTooLarge(
                f"artifact {path!r} is {size} bytes, more than an MCP resource read carries "
                f"({MAX_RESOURCE_BYTES}); download it from /api/v1/runs/{run_id}/artifacts/{path}",
                code="resource_too_large", details={"size": size, "limit": MAX_RESOURCE_BYTES})
        return blob.read_bytes(), row.content_type

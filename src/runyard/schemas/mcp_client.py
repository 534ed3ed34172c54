"""runyard as an MCP client: the tools of verified ``mcp`` connections, by alias."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request


class McpToolView(BaseModel):
    object: Literal["mcp_tool"] = "mcp_tool"
    alias: str = Field(description="mcp_<connection name>_<tool name>")
    server: str = Field(description="the mcp connection's name")
    connection_id: str
    name: str = Field(description="the tool's name on the MCP server")
    description: str
    input_schema: dict[str, Any] = Field(description="the tool's input JSON Schema, as the server listed it")
    server_status: Literal["ok", "failed", "unknown"] = Field(
        description="the connection's status (a failed call marks it failed)")


class McpToolList(BaseModel):
    object: Literal["list"] = "list"
    items: list[McpToolView]


class McpToolExecute(Request):
    parameters: dict[str, Any] = Field(default_factory=dict, description="the tool's arguments")

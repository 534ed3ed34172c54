"""Tools: what deploys or changes one, and what a tool and its versions look like."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runyard.schemas.common import Request

RetryCause = Literal["error", "worker_lost", "timeout"]
# function: the entrypoint is called with the inputs and returns the output. script: the
# module runs top to bottom with the inputs as its globals; ``output_vars`` names the
# globals that make the output (docs/api.md, "Script-mode tools").
ToolMode = Literal["function", "script"]
Visibility = Literal["private", "public"]


class ToolConfig(Request):
    """The versioned part of a tool: a change makes a new version. Strict: ``"1"`` is not a
    number nor ``1`` a boolean here."""

    model_config = ConfigDict(extra="forbid", strict=True)

    entrypoint: str | None = Field(default=None, description="default main; a zip's is module.path:function")
    input_schema: dict[str, Any] | None = Field(default=None, description="default: inferred from the signature")
    output_schema: dict[str, Any] | None = None
    requirements: list[str] | None = None
    required_secrets: list[str] | None = None
    default_inputs: dict[str, Any] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86400)
    memory_mb: int | None = Field(default=None, ge=64, le=262144)
    retries: int | None = Field(default=None, ge=0, le=10)
    reuse_process: bool | None = Field(default=None, description="successive runs may share a process")
    retry_on: list[RetryCause] | None = Field(default=None, description="what retries covers; default [worker_lost]")
    retry_backoff_s: float | None = Field(default=None, ge=0, le=3600)
    network: bool | None = Field(default=None, description="false: the runs cannot open any socket")
    files: list[str] | None = Field(default=None, description="workspace files the runs may read "
                                                              "(context.files.open(name))")
    connections: list[str] | None = Field(default=None, description="connections the runs may read, with their "
                                                                    "secret values (context.connection(name))")
    mcp_server_names: list[str] | None = Field(default=None, description="mcp connections whose tools the tool "
                                                                         "uses (docs/mcp.md)")
    expected_tools: list[str] | None = Field(default=None, description="MCP tool aliases (mcp_<server>_<tool>) the "
                                                                       "declared servers must list: else 400 "
                                                                       "mcp_tools_missing")
    mode: ToolMode | None = Field(default=None, description="function (default) or script: code without an entry "
                                                            "function, the inputs become module globals")
    output_vars: list[str] | None = Field(default=None, description="script mode: the globals returned as the "
                                                                    "output, {name: value}")


class ToolDeploy(ToolConfig):
    name: str = Field(description="a slug, unique among live tools; an existing name gets a new version")
    code: str | None = Field(default=None, description="the source (or upload a file as multipart)")
    description: str | None = None
    visibility: Visibility | None = Field(default=None, description="private (default): its owner and admins; "
                                                                   "public: every user of the workspace")


class ToolUpdate(ToolConfig):
    name: str | None = Field(default=None, description="renames the tool (its id stays); the old name is free")
    code: str | None = None
    description: str | None = None
    visibility: Visibility | None = None


class _ToolConfigView(BaseModel):
    entrypoint: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    requirements: list[str]
    required_secrets: list[str]
    default_inputs: dict[str, Any]
    timeout_s: float
    memory_mb: int
    retries: int
    reuse_process: bool
    retry_on: list[RetryCause]
    retry_backoff_s: float
    network: bool
    files: list[str] = Field(default_factory=list, description="workspace files the runs may read")
    connections: list[str] = Field(default_factory=list, description="connections the runs may read")
    mcp_server_names: list[str] = Field(default_factory=list, description="mcp connections the tool uses")
    expected_tools: list[str] = Field(default_factory=list, description="MCP tool aliases the tool expects")
    mode: ToolMode = "function"
    output_vars: list[str] | None = Field(default=None, description="script mode: the globals making the output")


class ToolView(_ToolConfigView):
    id: str
    object: Literal["tool"] = "tool"
    name: str
    description: str
    visibility: Visibility
    owner_id: str | None = Field(default=None, description="the id of the user who deployed it (null: deployed before "
                                                        "owners were recorded)")
    version: int = Field(description="the latest version")
    created_at: str
    updated_at: str


class ToolVersionView(_ToolConfigView):
    id: str
    object: Literal["tool_version"] = "tool_version"
    tool_id: str
    version: int
    description: str
    source_kind: str
    source_name: str
    code_sha256: str
    created_at: str

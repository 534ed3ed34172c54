"""Runs: what creates one and what a run looks like."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request
from runyard.schemas.run_details import RunDebug, RunExecution

RunStatus = Literal["awaiting_confirmation", "queued", "running", "waiting_for_input", "succeeded", "failed",
                    "cancelled", "timed_out"]


class RunTags(Request):
    session: str | None = Field(default=None, max_length=200)
    batch_id: str | None = Field(default=None, max_length=200)
    example_id: str | None = Field(default=None, max_length=200)
    project: str | None = Field(default=None, max_length=200)
    app: str | None = Field(default=None, max_length=200)
    source_ref: str | None = Field(default=None, max_length=200, description="what the run came from (a "
                                   "commit, a ticket, a file): searchable like the other tags")


class RunCreate(Request):
    tool: str | None = Field(default=None, description="the tool's name or id (or give workflow)")
    workflow: str | None = Field(default=None, description="the workflow's name or id (or give tool)")
    version: int | str | None = Field(default=None, description="a version of the tool (a number) or of the "
                                     "workflow (a number or a tag); default: the latest published")
    inputs: dict[str, Any] | None = Field(default=None, description="validated against the version's input schema")
    tags: RunTags | None = None
    requires_confirmation: bool = Field(default=False, description="wait in awaiting_confirmation until confirmed")
    timeout_s: float | None = Field(default=None, gt=0, le=86400, strict=True, description="this run's time limit, at most its "
                                    "tool version's (else 400 timeout_too_large); default: the version's")


class RunError(BaseModel):
    type: str | None = None
    message: str | None = None
    traceback: str | None = None
    step_id: str | None = Field(default=None, description="a workflow run's: the step that failed it")
    step_error: dict[str, Any] | None = Field(default=None, description="a workflow run's: that step's error")


class RunUsage(BaseModel):
    wall_ms: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None


class RunView(BaseModel):
    id: str
    object: Literal["run"] = "run"
    tool_id: str
    tool_name: str
    tool_version: int
    status: RunStatus
    output: Any = None
    error: RunError | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    type: str = Field(default="tool", description="what the run runs: tool, workflow, or input (a workflow step "
                      "waiting for a person). A workflow run's tool_id, tool_name and tool_version are its "
                      "workflow's")
    trigger: str | None = None
    triggered_by: str | None = Field(default=None, description="who or what started it: the user (api, cli, sdk, "
                                     "rerun), the schedule's, webhook's or email trigger's id")
    parent_run_id: str | None = None
    step_id: str | None = Field(default=None, description="a workflow step's id (its workflow run: parent_run_id)")
    item_index: int | None = Field(default=None, description="the for_each item this step run is for")
    attempt: int
    max_attempts: int
    worker_id: str | None = None
    progress: dict[str, Any] | None = None
    usage: RunUsage | None = None
    requires_confirmation: bool = False
    timeout_s: float | None = Field(default=None, description="the run's own time limit, when it was given one")
    input_files: list[str] = Field(default_factory=list)
    created_at: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    log_bytes: int | None = None
    log_truncated: bool | None = None
    inputs: dict[str, Any] | None = Field(default=None, description="with ?expand=inputs only")
    execution: RunExecution | None = Field(default=None, description="with ?expand=execution only")
    debug: RunDebug | None = Field(default=None, description="with ?expand=debug only")


class ArtifactView(BaseModel):
    path: str
    size: int
    sha256: str
    content_type: str
    created_at: str | None = None


class RunInput(Request):
    payload: Any = Field(description="what the waiting step outputs (JSON, at most 1 MB)")
    step_id: str | None = Field(default=None, description="which waiting step, when several wait")


class TraceStep(BaseModel):
    step_id: str
    item_index: int | None = None
    run_id: str | None = None
    type: str | None = None
    status: str
    attempt: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    input_digest: str | None = None
    output_digest: str | None = None
    error: dict[str, Any] | None = None


class RunDefinition(BaseModel):
    object: Literal["workflow_definition"] = "workflow_definition"
    run_id: str
    workflow_id: str
    workflow_name: str
    version: int
    source: str = Field(description="the definition's text as saved")
    definition: dict[str, Any]

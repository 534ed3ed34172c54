"""A run's files, where and how it executed, and its live connection."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class RunFileView(BaseModel):
    id: str = Field(description="stable; names the file only within this run")
    object: Literal["run_file"] = "run_file"
    run_id: str = Field(description="the run holding it (a workflow run's step files: the step's run)")
    direction: Literal["input", "output"] = Field(description="input: a file the run was given; output: an "
                                                  "artifact it wrote")
    name: str = Field(description="an input's file name, or an output's path (as GET /runs/{id}/artifacts gives it)")
    input: str | None = Field(default=None, description="the input it was given for (inputs only)")
    size: int | None = None
    content_type: str
    sha256: str | None = None
    step: str | None = Field(default=None, description="a workflow run's: the step it belongs to")
    item_index: int | None = Field(default=None, description="the step's for_each item")
    created_at: str | None = None


class ExecutionWorker(BaseModel):
    id: str
    host: str | None = None
    pid: int | None = None


class ExecutionAttempt(BaseModel):
    attempt: int | None = None
    worker_id: str | None = None
    host: str | None = None
    started_at: str | None = None


class ExecutionTimings(BaseModel):
    created_at: str | None = None
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    queue_wait_ms: float | None = Field(default=None, description="queued to started (the latest attempt)")
    duration_ms: float | None = Field(default=None, description="started to finished")


class RunExecution(BaseModel):
    worker: ExecutionWorker | None = Field(default=None, description="the worker holding (or that last held) it")
    attempt: int
    max_attempts: int
    attempts: list[ExecutionAttempt] = Field(default_factory=list, description="each attempt's start, as recorded")
    environment: dict[str, Any] | None = Field(default=None, description="the interpreter (the shared warm one or "
                                               "the tool's own environment) and requirements")
    timings: ExecutionTimings


class RunDebug(BaseModel):
    recorded: bool = Field(description="whether a worker recorded the attempt's start (not for runs that "
                           "never started, nor for runs the server carries out itself)")
    attempt: int | None = None
    sandbox: dict[str, Any] | None = Field(default=None, description="mode, process cap, host filter; which "
                                           "protections the host enforced for unrestricted admin keys only")
    limits: dict[str, Any] | None = Field(default=None, description="timeout_s, memory_mb, cpu_s, max_open_files, "
                                          "max_file_size_mb as the engine was asked to apply them")
    network: bool | None = None
    reuse_process: bool | None = None


class RunConnection(BaseModel):
    object: Literal["run_connection"] = "run_connection"
    run_id: str
    url: str = Field(description="the WebSocket URL (signed; it opens nothing after expires_at)")
    expires_at: str

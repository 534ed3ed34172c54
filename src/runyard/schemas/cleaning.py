"""Cleaning tasks (services.cleaning): a model-proposed SQL transform of a dataset, run in the
sandbox and committed as a new dataset."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

CleaningStatus = Literal["pending", "proposing", "running", "succeeded", "failed"]


class CleaningRequest(Request):
    prompts: list[str] = Field(description="1-10 cleaning steps, applied in order (each at most 2,000 characters)")
    output_namespace: str = Field(min_length=1, max_length=64, description="where the cleaned dataset is created "
                                                                           "(write access needed)")
    output_dataset: str = Field(min_length=1, max_length=64, description="the new dataset's name: must not exist")
    provider: str | None = Field(default=None, max_length=64, description="default: the workspace's provider")
    model: str | None = Field(default=None, max_length=200, description="default: the provider's model")


class CleaningSource(BaseModel):
    namespace: str
    dataset: str
    snapshot: int | None = Field(default=None, description="the snapshot the transform read")


class CleaningOutput(BaseModel):
    namespace: str
    dataset: str
    dataset_id: str | None = Field(default=None, description="set once committed")


class CleaningError(BaseModel):
    code: str
    message: str


class CleaningTaskView(BaseModel):
    id: str
    object: Literal["cleaning_task"] = "cleaning_task"
    status: CleaningStatus
    source: CleaningSource
    output: CleaningOutput
    prompts: list[str]
    sql: str | None = Field(default=None, description="the model's transform: one SELECT over the table source")
    explanation: str | None = None
    error: CleaningError | None = None
    provider: str | None = None
    model: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict, description="the model call's tokens")
    input_rows: int | None = None
    output_rows: int | None = None
    user_id: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

"""Language-model providers and the model features' contracts. An API key is write-only:
views carry ``masked_api_key`` and ``has_api_key``, never the key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from runyard.schemas.common import Request

ProviderKind = Literal["openai-compatible"]


class ProviderCreate(Request):
    name: str = Field(min_length=1, max_length=64, description="lower-case slug; unique in the workspace")
    kind: ProviderKind = "openai-compatible"
    base_url: str = Field(min_length=1, max_length=2000,
                          description="the endpoint before /chat/completions, e.g. https://api.openai.com/v1; "
                                      "under the outbound-host policy (RUNYARD_OUTBOUND_ALLOW)")
    api_key: str | None = Field(default=None, max_length=4096, description="stored encrypted, never returned")
    default_model: str = Field(min_length=1, max_length=200)
    timeout_s: float = Field(default=60.0, gt=0, le=600, description="per attempt")
    max_retries: int = Field(default=2, ge=0, le=10, description="retries on 429, 5xx and connection failures")
    default: StrictBool | None = Field(default=None, description="the workspace default (the first provider is, "
                                                                 "unless false)")


class ProviderUpdate(Request):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    kind: ProviderKind | None = None
    base_url: str | None = Field(default=None, min_length=1, max_length=2000)
    api_key: str | None = Field(default=None, max_length=4096, description='null or "" removes the key')
    default_model: str | None = Field(default=None, min_length=1, max_length=200)
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    default: StrictBool | None = None


class ProviderView(BaseModel):
    object: Literal["llm_provider"] = "llm_provider"
    id: str
    name: str
    kind: str
    base_url: str
    has_api_key: bool
    masked_api_key: str | None = None
    default_model: str
    timeout_s: float
    max_retries: int
    default: bool
    source: Literal["api", "environment"] = "api"
    created_at: str | None = None
    updated_at: str | None = None


class ColumnSpec(Request):
    name: str = Field(min_length=1, max_length=255)
    type: str = Field(default="unknown", max_length=64)


class ModelChoice(Request):
    provider: str | None = Field(default=None, min_length=1, max_length=64, description="a provider's name or id (default: "
                                                                          "the workspace's)")
    model: str | None = Field(default=None, min_length=1, max_length=200, description="default: the provider's")


class InferDescription(ModelChoice):
    sample: list[dict[str, Any]] | None = Field(default=None, max_length=1000, description="rows to show the model")
    current_description: str | None = Field(default=None, max_length=100_000)
    current_schema: list[ColumnSpec] | None = Field(default=None, max_length=10_000,
                                                        description="[{name, type}] of columns not stored yet")


class InferredDescription(BaseModel):
    object: Literal["inferred_description"] = "inferred_description"
    data_description: str
    field_definitions: dict[str, str]
    source: Literal["model", "statistics"] = Field(description="statistics: no provider is configured, built "
                                                               "deterministically from the column statistics")
    provider: str | None = None
    model: str | None = None
    trace: list[dict[str, Any]] = Field(default_factory=list, description="the model calls: messages, answer, "
                                                                          "tokens, ms")


class AskRequest(ModelChoice):
    query: str = Field(min_length=1, max_length=10_000, description="the question")
    namespace: str | None = Field(default=None, description="the datasets the model may query (default: every "
                                                             "dataset this key can read)")
    helper_prompt: str | None = Field(default=None, max_length=10_000, description="extra instructions for the model")
    max_steps: int = Field(default=6, ge=1, le=20, description="at most this many queries")


class AskStep(BaseModel):
    index: int
    sql: str | None = None
    columns: list[str] | None = None
    rows: list[dict[str, Any]] | None = None
    row_count: int | None = None
    truncated: bool | None = None
    error: dict[str, Any] | None = Field(default=None, description="{code, message}: given back to the model")


class AnswerView(BaseModel):
    object: Literal["answer"] = "answer"
    answer: str
    steps: list[AskStep]
    trace: list[dict[str, Any]] = Field(default_factory=list)

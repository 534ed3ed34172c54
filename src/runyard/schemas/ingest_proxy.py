"""The ingest proxy (issue 17): the contracts of /ingest-proxy/runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

EventType = Literal["phase", "progress", "log", "hook", "complete", "error"]
HookKind = Literal["schema_review", "clarification", "token_refresh"]


class LLMSettings(BaseModel):
    """The reference's ``llm`` settings: ``provider`` and ``model`` choose the model; the
    temperatures are kept with the run (runyard's calls run at temperature 0)."""

    model_config = {"extra": "allow"}
    provider: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=200)


class ProxyRunCreate(Request):
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str | None = Field(default=None, max_length=64,
                                description="the dataset to ingest into; default: the model's proposed name")
    data: list[Any] | None = Field(default=None, description="the rows inline (JSON objects)")
    data_url: str | None = Field(default=None, max_length=4000,
                                 description="a URL answering a JSON array, fetched by the worker under the "
                                             "outbound-host policy")
    workspace_file: str | None = Field(default=None, max_length=255,
                                       description="a workspace file's name: a JSON array, NDJSON, CSV or TSV")
    user_prompt: str | None = Field(default=None, description="the goals of the ingestion, for the model")
    model: bool = True
    ingest: bool = True
    ontology: bool = True
    max_eval_retries: int = Field(default=3, ge=0, le=10)
    max_rows_for_modeling: int = Field(default=20, ge=1, le=500)
    max_sample_rows: int = Field(default=10, ge=1, le=500)
    enable_human_in_the_loop: bool = False
    predefined_schema: Any = Field(default=None, description="skips the model: {fields: [{name, type, description, "
                                                             "source}], data_description} or {name: type}")
    explosion_helper_prompt: str | None = None
    coalescence_helper_prompt: str | None = None
    llm: LLMSettings | None = None


class ProxyHookAnswer(Request):
    kind: HookKind
    hook_id: str | None = Field(default=None, max_length=64)
    approved: bool | None = None
    schema_: Any = Field(default=None, alias="schema", description="a schema_review's replacement schema")
    answer: str | None = Field(default=None, max_length=20_000)
    token: str | None = Field(default=None, max_length=512, description="a token_refresh's fresh key")


class ProxyField(BaseModel):
    name: str
    type: str
    description: str = ""
    source: str


class ProxySchema(BaseModel):
    fields: list[ProxyField]
    data_description: str = ""
    dataset_name: str | None = None


class ProxyRun(BaseModel):
    object: Literal["ingest_proxy_run"] = "ingest_proxy_run"
    id: str
    status: str
    phase: str | None = None
    namespace: str
    dataset: str | None = None
    phases_done: list[str]
    schema_: ProxySchema | None = Field(default=None, alias="schema", serialization_alias="schema")
    schema_source: str | None = None
    hook: dict[str, Any] | None = None
    events: int = Field(description="events so far: the stream's next start_index")
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: str
    finished_at: str | None = None


class ProxyEvent(BaseModel):
    index: int
    type: EventType
    phase: str | None = None
    message: str
    data: dict[str, Any] | None = None
    at: str


class ProxyModelCall(BaseModel):
    phase: str
    attempt: int | None = None
    prompt: str
    response: str
    tokens: dict[str, int]
    ms: float | None = None
    model: str | None = None
    provider: str | None = None
    error: str | None = None


class ProxyStep(BaseModel):
    phase: str
    started_at: str
    ms: float


class ProxyTrace(BaseModel):
    object: Literal["ingest_proxy_trace"] = "ingest_proxy_trace"
    run_id: str
    status: str
    model_calls: list[ProxyModelCall]
    tokens: dict[str, int]
    steps: list[ProxyStep]

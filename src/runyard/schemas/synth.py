"""Synthetic data: templates, generation requests, saved sets.

A template document's fields are the template language's (docs/synth.md), checked by
its parser with messages that name the field; the models here state the shapes around
them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runyard.schemas.common import Request

SET_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$"


class TemplateDocument(Request):
    name: str = Field(min_length=1)
    description: str | None = None
    locale: str | None = Field(default=None, description="e.g. en_US; default en_US")
    fields: list[dict[str, Any]] = Field(min_length=1, description="generator specs, see docs/synth.md")


class TemplatePatch(Request):
    """Only what changes; an unchanged document makes no new version."""

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    locale: str | None = None
    fields: list[dict[str, Any]] | None = Field(default=None, min_length=1)


class PreviewRequest(Request):
    seed: int | str | None = Field(default=None, description="default: one is drawn and returned")
    version: int | None = Field(default=None, ge=1)
    overrides: dict[str, Any] | None = Field(default=None, description="per-field spec changes for this call")


class GenerationRequest(PreviewRequest):
    """A generation; format options (``delimiter``, ``sheet``, ``compression``…) may be given
    at the top level or under ``options``."""

    model_config = ConfigDict(extra="allow")

    count: int = Field(ge=0)
    format: Literal["json", "ndjson", "csv", "sql", "xlsx", "parquet"] | None = Field(
        default=None, description="default: from the Accept header, else json")
    options: dict[str, Any] | None = None
    into_set: str | None = Field(default=None, pattern=SET_NAME_PATTERN,
                                 description="save the rows as this set instead of streaming them")


class TemplateView(BaseModel):
    object: Literal["template"] = "template"
    id: str
    name: str
    description: str | None = None
    locale: str | None = None
    fields: list[dict[str, Any]]
    version: int
    seeding: int
    latest_version: int
    created_at: str
    updated_at: str
    version_created_at: str


class PreviewView(BaseModel):
    object: Literal["preview"] = "preview"
    template_id: str
    version: int
    seed: int | str
    rows: list[dict[str, Any]]


class SetSave(Request):
    name: str = Field(pattern=SET_NAME_PATTERN)
    rows: list[dict[str, Any]]


class SetView(BaseModel):
    object: Literal["set"] = "set"
    id: str
    name: str
    version: int
    latest_version: int
    row_count: int
    columns: list[dict[str, Any]]
    size: int
    source: dict[str, Any] | None = None
    created_at: str
    updated_at: str

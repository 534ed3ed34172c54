"""Workflows, their versions and folders."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request


class WorkflowCreate(Request):
    definition: str | dict[str, Any] = Field(description="the definition: YAML/JSON text or an object")
    draft: bool = Field(default=False, description="save as the workflow's draft instead of publishing")
    folder_id: str | None = None
    tag: str | None = Field(default=None, description="a tag for the published version (moved from any other)")


class WorkflowPatch(Request):
    definition: str | dict[str, Any] | None = Field(default=None, description="a new version (or the draft)")
    draft: bool = False
    folder_id: str | None = Field(default=None, description="null: out of any folder")
    tag: str | None = None


class WorkflowPublish(Request):
    tag: str | None = Field(default=None, description="tag the published version")
    version: int | None = Field(default=None, description="instead of publishing the draft, set tag on this "
                                "published version")


class WorkflowVersionView(BaseModel):
    id: str
    object: Literal["workflow_version"] = "workflow_version"
    workflow_id: str
    version: int | None = Field(description="null while a draft")
    status: Literal["draft", "published"]
    tag: str | None = None
    created_at: str | None = None
    published_at: str | None = None
    source: str | None = None
    definition: dict[str, Any] | None = None


class WorkflowView(BaseModel):
    id: str
    object: Literal["workflow"] = "workflow"
    name: str
    kind: Literal["workflow", "block"]
    description: str
    folder_id: str | None = None
    latest_version: int | None = Field(description="the newest published version (null: only a draft)")
    tag: str | None = Field(default=None, description="the latest version's tag")
    has_draft: bool | None = None
    created_at: str | None = None
    updated_at: str | None = None
    source: str | None = Field(default=None, description="the latest version's text (the draft's if none)")
    definition: dict[str, Any] | None = None
    draft: WorkflowVersionView | None = None


class FolderCreate(Request):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""


class FolderPatch(Request):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None


class FolderView(BaseModel):
    id: str
    object: Literal["folder"] = "folder"
    name: str
    description: str
    created_at: str | None = None
    updated_at: str | None = None

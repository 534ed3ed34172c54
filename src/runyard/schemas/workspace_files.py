"""Workspace files and the workspace's storage usage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WorkspaceFileView(BaseModel):
    object: Literal["workspace_file"] = "workspace_file"
    id: str
    name: str
    size: int = Field(description="bytes")
    content_type: str
    sha256: str = Field(description="hex SHA-256 of the bytes; the download's ETag")
    created_by: str | None = None
    updated_by: str | None = None
    created_at: str
    updated_at: str


class StorageByKind(BaseModel):
    files: int
    datasets: int
    artifacts: int
    expected: int = Field(description="files of expected outputs (evaluation)")
    uploads: int = Field(description="bytes reserved by multipart uploads still open")


class StorageUsageView(BaseModel):
    object: Literal["storage_usage"] = "storage_usage"
    used_bytes: int
    quota_bytes: int | None = Field(default=None, description="RUNYARD_STORAGE_QUOTA_BYTES; null: unlimited")
    by_kind: StorageByKind

"""Secrets: values are write-only."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request


class SecretPut(Request):
    value: str = Field(min_length=1)
    display_name: str | None = Field(default=None, max_length=200)
    description: str | None = None
    category: str | None = Field(default=None, max_length=100)


class SecretView(BaseModel):
    object: Literal["secret"] = "secret"
    name: str
    display_name: str | None = None
    description: str | None = None
    category: str | None = None
    masked_value: str | None = Field(default=None, description="the value's first and last characters, starred")
    created_at: str | None = None
    updated_at: str | None = None

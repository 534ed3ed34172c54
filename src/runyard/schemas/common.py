"""Shapes every resource shares: the error envelope and list pages."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class ErrorBody(BaseModel):
    code: str = Field(description="stable, documented in docs/errors.md")
    message: str
    details: dict[str, Any] | None = None
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    """Every non-2xx answer."""

    error: ErrorBody


class Page(BaseModel, Generic[T]):
    """A page of a list; ``next_cursor`` (null on the last page) fetches the next."""

    object: Literal["list"] = "list"
    items: list[T]
    next_cursor: str | None = None
    total: int | None = None


class Request(BaseModel):
    """A request body: fields it does not know are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

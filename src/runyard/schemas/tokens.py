"""API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

Role = Literal["admin", "member", "viewer"]


class Restrictions(Request):
    tools: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list, description=(
        "not supported yet (there are no namespaces): must be empty, else 400 unsupported_restriction"))


class TokenCreate(Request):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "member"
    expires_at: datetime | None = None
    restrictions: Restrictions | None = None


class TokenView(BaseModel):
    id: str
    object: Literal["token"] = "token"
    name: str
    role: Role
    prefix: str
    restrictions: dict[str, list[str]] = Field(default_factory=dict)
    expires_at: str | None = None
    created_at: str | None = None
    last_used_at: str | None = None
    key: str | None = Field(default=None, description="the secret key: in the answer to its creation only")

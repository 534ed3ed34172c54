"""API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

Role = Literal["admin", "member", "viewer"]
Access = Literal["read", "write"]


class GrantSpec(Request):
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str | None = Field(default=None, max_length=64, description="one dataset; none: the whole namespace")
    access: Access = "read"


class Restrictions(Request):
    tools: list[str] = Field(default_factory=list, description="tool names; empty: every tool")
    grants: list[GrantSpec] = Field(default_factory=list, description="data the key may reach; empty: all "
                                    "the data its user may reach")


class TokenCreate(Request):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "member"
    expires_at: datetime | None = None
    restrictions: Restrictions | None = None
    user: str | None = Field(default=None, description="whose key it is (admins only); default: the caller's user")


class GrantView(BaseModel):
    namespace: str
    dataset: str | None = None
    access: Access


class RestrictionsView(BaseModel):
    tools: list[str] = Field(default_factory=list)
    grants: list[GrantView] = Field(default_factory=list)


class TokenView(BaseModel):
    id: str
    object: Literal["token"] = "token"
    name: str
    role: Role
    prefix: str
    user_id: str | None = None
    restrictions: RestrictionsView = Field(default_factory=RestrictionsView)
    expires_at: str | None = None
    created_at: str | None = None
    last_used_at: str | None = None
    key: str | None = Field(default=None, description="the secret key: in the answer to its creation only")


class NamespacePermission(BaseModel):
    namespace: str
    access: Literal["read", "write", "owner"] | None = Field(description="on the namespace as a whole")
    datasets: dict[str, Literal["read", "write", "owner"]] = Field(
        default_factory=dict, description="datasets reachable beyond the namespace-wide access (by grant)")


class TokenPermissions(BaseModel):
    object: Literal["token_permissions"] = "token_permissions"
    token_id: str
    user: str | None
    role: Role
    tools: list[str] | None = Field(description="the tools it may use; null: all")
    namespaces: list[NamespacePermission]

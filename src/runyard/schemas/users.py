"""Users, sign-in and namespaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool

from runyard.schemas.common import Request
from runyard.schemas.tokens import Role

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DATA_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class UserCreate(Request):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    role: Role = "member"
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)


class UserUpdate(Request):
    role: Role | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)


class UserView(BaseModel):
    id: str
    object: Literal["user"] = "user"
    username: str
    role: Role
    display_name: str | None = None
    email: str | None = None
    has_password: bool = False
    created_at: str | None = None
    updated_at: str | None = None


class MeView(BaseModel):
    object: Literal["me"] = "me"
    id: str | None = None
    username: str | None
    role: Role | None = Field(default=None, description="the user's role")
    token_id: str
    token_role: Role = Field(description="what this key acts with: its role capped by its user's")
    restricted: bool
    display_name: str | None = None
    email: str | None = None


class Login(Request):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


Level = Literal["read", "write", "owner"]


class NamespaceCreate(Request):
    name: str = Field(min_length=1, max_length=64, pattern=DATA_NAME_PATTERN)
    private: StrictBool = True
    description: str = Field(default="", max_length=10_000)
    field_definitions: dict[str, str] | None = None


class NamespaceUpdate(Request):
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=DATA_NAME_PATTERN,
                             description="a new name (renames)")
    private: StrictBool | None = None
    description: str | None = Field(default=None, max_length=10_000)
    field_definitions: dict[str, str] | None = None


class NamespaceView(BaseModel):
    id: str
    object: Literal["namespace"] = "namespace"
    name: str
    owner: str | None
    private: bool
    description: str = ""
    field_definitions: dict[str, str] = Field(default_factory=dict)
    datasets: int = 0
    access: Level | None = Field(default=None, description="what the calling key may do with it")
    created_at: str | None = None
    updated_at: str | None = None


class MemberPut(Request):
    username: str = Field(min_length=1, max_length=64)
    access: Literal["read", "write"] = "read"


class MemberView(BaseModel):
    object: Literal["namespace_member"] = "namespace_member"
    username: str
    access: Literal["read", "write"]
    created_at: str | None = None

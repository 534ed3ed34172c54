"""``client.users``: who uses the workspace (admins manage them), ``me()`` and password sign-in."""

from __future__ import annotations

from typing import Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Me, Token, User
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Users", "AsyncUsers"]

Role = Literal["admin", "member", "viewer"]


class UsersAPI:
    """``client.users``, written once for :class:`Users` and :class:`AsyncUsers`."""

    @endpoint
    def me(self, *, timeout: Timeout = None) -> Plan[Me]:
        """Who the calling key is: its user, the user's role, the key's own (capped) role
        and whether restrictions narrow it."""
        return Me.model_validate((yield Send(RequestOptions("GET", "/me", timeout=timeout))).json())

    @endpoint
    def create(
        self,
        username: str,
        *,
        role: Role = "member",
        password: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[User]:
        """A new user (admin). The role caps the roles of the user's keys; a password (≥ 8
        characters) lets them sign in (``login``, the web UI)."""
        body = compact(username=username, role=role, password=password, display_name=display_name, email=email)
        return User.model_validate((yield Send(RequestOptions("POST", "/users", json=body, timeout=timeout))).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[User]:
        """The workspace's users; iterate the page for all of them."""
        return Listing(User, lambda cursor: RequestOptions(
            "GET", "/users", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, username: str, *, timeout: Timeout = None) -> Plan[User]:
        """One user."""
        return User.model_validate((yield Send(RequestOptions("GET", f"/users/{seg(username)}", timeout=timeout))).json())

    @endpoint
    def update(
        self,
        username: str,
        *,
        role: Role | None = None,
        password: str | None = None,
        display_name: str | None = None,
        email: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[User]:
        """Change what is given (role, password, display name, email); the rest stays."""
        body = compact(role=role, password=password, display_name=display_name, email=email)
        opts = RequestOptions("PATCH", f"/users/{seg(username)}", json=body, timeout=timeout)
        return User.model_validate((yield Send(opts)).json())

    @endpoint
    def delete(self, username: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a user and revoke their keys (the last admin cannot go: ``ConflictError``)."""
        yield Send(RequestOptions("DELETE", f"/users/{seg(username)}", timeout=timeout))

    @endpoint
    def login(self, username: str, password: str, *, timeout: Timeout = None) -> Plan[Token]:
        """Sign in with a password: a new key of the user's role, valid 12 hours, in the
        returned token's ``key``. Needs no valid key of its own (use it with any client);
        wrong credentials raise ``AuthenticationError``; too many, ``RateLimitError``."""
        opts = RequestOptions("POST", "/auth/login", json={"username": username, "password": password},
                              timeout=timeout, max_retries=0, idempotency_key="")
        return Token.model_validate((yield Send(opts)).json())


class Users(UsersAPI, SyncResource):
    """``client.users``: the workspace's users."""


class AsyncUsers(UsersAPI, AsyncResource):
    """``client.users`` of :class:`~runyard.AsyncClient` (coroutines)."""

"""``client.tokens``: API keys (admin only). The key itself is returned once, by ``create``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Token
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Tokens", "AsyncTokens"]

Role = Literal["admin", "member", "viewer"]


def _create_request(
    name: str,
    role: str,
    expires_at: datetime | str | None,
    tools: Sequence[str] | None,
    namespaces: Sequence[str] | None,
    idempotency_key: str | None,
    timeout: Timeout,
) -> RequestOptions:
    restrictions = compact(
        tools=list(tools) if tools is not None else None,
        namespaces=list(namespaces) if namespaces is not None else None,
    )
    body = compact(
        name=name,
        role=role,
        expires_at=expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at,
        restrictions=restrictions or None,
    )
    return RequestOptions("POST", "/tokens", json=body, idempotency_key=idempotency_key, timeout=timeout)


class TokensAPI:
    """``client.tokens``, written once for :class:`Tokens` and :class:`AsyncTokens`."""

    @endpoint
    def create(
        self,
        name: str,
        *,
        role: Role = "member",
        expires_at: datetime | str | None = None,
        tools: Sequence[str] | None = None,
        namespaces: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Token]:
        """A new API key; ``tools`` restricts what it may touch (``namespaces`` is refused
        with 400 ``unsupported_restriction`` until namespaces exist). It can be no broader
        than the calling key (``PermissionDeniedError``, code ``token_escalation``). The
        returned token's ``key`` is the only time the secret is shown."""
        opts = _create_request(name, role, expires_at, tools, namespaces, idempotency_key, timeout)
        return Token.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Token]:
        """The workspace's API keys (their prefixes, never the keys)."""
        return Listing(Token, lambda cursor: RequestOptions(
            "GET", "/tokens", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, token_id: str, *, timeout: Timeout = None) -> Plan[Token]:
        """One API key's record (not the key)."""
        return Token.model_validate((yield Send(RequestOptions("GET", f"/tokens/{seg(token_id)}", timeout=timeout))).json())

    @endpoint
    def delete(self, token_id: str, *, timeout: Timeout = None) -> Plan[None]:
        """Revoke an API key: it stops working at once."""
        yield Send(RequestOptions("DELETE", f"/tokens/{seg(token_id)}", timeout=timeout))


class Tokens(TokensAPI, SyncResource):
    """``client.tokens``: API keys (admin only)."""


class AsyncTokens(TokensAPI, AsyncResource):
    """``client.tokens`` of :class:`~runyard.AsyncClient` (coroutines)."""

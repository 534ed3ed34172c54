"""``client.tokens``: API keys (admin only). The key itself is returned once, by ``create``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from .._base import RequestOptions, Timeout
from ..models import Token
from ..pagination import AsyncPaginator, SyncCursorPage
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


class Tokens(SyncResource):
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
    ) -> Token:
        """A new API key; ``tools`` restricts what it may touch (``namespaces`` is refused
        with 400 ``unsupported_restriction`` until namespaces exist). It can be no broader
        than the calling key (``PermissionDeniedError``, code ``token_escalation``). The
        returned token's ``key`` is the only time the secret is shown."""
        opts = _create_request(name, role, expires_at, tools, namespaces, idempotency_key, timeout)
        return Token.model_validate(self._client.request(opts).json())

    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> SyncCursorPage[Token]:
        def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/tokens", params={"limit": limit, "cursor": cursor}, timeout=timeout)
            return self._client.request(opts).json()

        return SyncCursorPage(fetch(None), Token, fetch)

    def get(self, token_id: str, *, timeout: Timeout = None) -> Token:
        return Token.model_validate(
            self._client.request(RequestOptions("GET", f"/tokens/{seg(token_id)}", timeout=timeout)).json()
        )

    def delete(self, token_id: str, *, timeout: Timeout = None) -> None:
        self._client.request(RequestOptions("DELETE", f"/tokens/{seg(token_id)}", timeout=timeout))


class AsyncTokens(AsyncResource):
    async def create(
        self,
        name: str,
        *,
        role: Role = "member",
        expires_at: datetime | str | None = None,
        tools: Sequence[str] | None = None,
        namespaces: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Token:
        opts = _create_request(name, role, expires_at, tools, namespaces, idempotency_key, timeout)
        return Token.model_validate((await self._client.request(opts)).json())

    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> AsyncPaginator[Token]:
        async def fetch(cursor: str | None) -> Any:
            opts = RequestOptions("GET", "/tokens", params={"limit": limit, "cursor": cursor}, timeout=timeout)
            return (await self._client.request(opts)).json()

        return AsyncPaginator(lambda: fetch(None), Token, fetch)

    async def get(self, token_id: str, *, timeout: Timeout = None) -> Token:
        resp = await self._client.request(RequestOptions("GET", f"/tokens/{seg(token_id)}", timeout=timeout))
        return Token.model_validate(resp.json())

    async def delete(self, token_id: str, *, timeout: Timeout = None) -> None:
        await self._client.request(RequestOptions("DELETE", f"/tokens/{seg(token_id)}", timeout=timeout))

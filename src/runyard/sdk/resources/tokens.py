"""``client.tokens``: API keys. The key itself is returned once, by ``create``.

Restrictions only narrow what a key's user may do: ``tools`` (names) and ``grants`` (data
the key may reach: a namespace, or one dataset in it, to read or write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Grant, Token, TokenPermissions
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Tokens", "AsyncTokens", "GrantLike", "parse_grant"]

Role = Literal["admin", "member", "viewer"]
#: A grant: a :class:`~runyard.sdk.models.Grant`, a mapping ``{namespace, dataset?, access}``,
#: or text ``"namespace[/dataset][:read|write]"`` (read when the access is left out).
GrantLike = Grant | Mapping[str, Any] | str


def parse_grant(grant: GrantLike) -> dict[str, Any]:
    """One grant as the wire wants it; text ``"ns/ds:write"`` is the CLI's spelling."""
    if isinstance(grant, Grant):
        return compact(namespace=grant.namespace, dataset=grant.dataset, access=grant.access)
    if isinstance(grant, Mapping):
        return compact(namespace=grant.get("namespace"), dataset=grant.get("dataset"),
                       access=grant.get("access") or "read")
    target, sep, access = grant.rpartition(":") if ":" in grant else (grant, "", "read")
    if sep and access not in ("read", "write"):
        raise ValueError(f"grant {grant!r}: the access after ':' must be read or write")
    namespace, _, dataset = target.partition("/")
    if not namespace:
        raise ValueError(f"grant {grant!r}: expected namespace[/dataset][:read|write]")
    return compact(namespace=namespace, dataset=dataset or None, access=access)


def _create_request(
    name: str,
    role: str,
    expires_at: datetime | str | None,
    tools: Sequence[str] | None,
    grants: Sequence[GrantLike] | None,
    user: str | None,
    idempotency_key: str | None,
    timeout: Timeout,
) -> RequestOptions:
    restrictions = compact(
        tools=list(tools) if tools is not None else None,
        grants=[parse_grant(g) for g in grants] if grants is not None else None,
    )
    body = compact(
        name=name,
        role=role,
        expires_at=expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at,
        restrictions=restrictions or None,
        user=user,
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
        grants: Sequence[GrantLike] | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[Token]:
        """A new API key. ``tools`` (names) and ``grants`` (``{namespace, dataset?,
        access}`` or ``"ns[/ds][:read|write]"``) narrow it below its user's rights; ``user``
        makes it for another user (admins only; default: the caller's). It can be no
        broader than the calling key (``PermissionDeniedError``, code ``token_escalation``).
        The returned token's ``key`` is the only time the secret is shown."""
        opts = _create_request(name, role, expires_at, tools, grants, user, idempotency_key, timeout)
        return Token.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Token]:
        """The API keys the caller may see (their prefixes, never the keys)."""
        return Listing(Token, lambda cursor: RequestOptions(
            "GET", "/tokens", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, token_id: str, *, timeout: Timeout = None) -> Plan[Token]:
        """One API key's record (not the key)."""
        return Token.model_validate((yield Send(RequestOptions("GET", f"/tokens/{seg(token_id)}", timeout=timeout))).json())

    @endpoint
    def permissions(self, token_id: str, *, timeout: Timeout = None) -> Plan[TokenPermissions]:
        """What the key may do: its role, the tools it may use and its access to each
        namespace (and dataset) it reaches."""
        opts = RequestOptions("GET", f"/tokens/{seg(token_id)}/permissions", timeout=timeout)
        return TokenPermissions.model_validate((yield Send(opts)).json())

    @endpoint
    def delete(self, token_id: str, *, timeout: Timeout = None) -> Plan[None]:
        """Revoke an API key: it stops working at once."""
        yield Send(RequestOptions("DELETE", f"/tokens/{seg(token_id)}", timeout=timeout))


class Tokens(TokensAPI, SyncResource):
    """``client.tokens``: API keys."""


class AsyncTokens(TokensAPI, AsyncResource):
    """``client.tokens`` of :class:`~runyard.AsyncClient` (coroutines)."""

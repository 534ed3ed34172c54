"""``client.namespaces``: owned groups of datasets, private or public, and who they are shared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Namespace, NamespaceMember
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Namespaces", "AsyncNamespaces"]


def _ns(namespace: str | Namespace) -> str:
    return namespace.name if isinstance(namespace, Namespace) else str(namespace)


class NamespacesAPI:
    """``client.namespaces``, written once for :class:`Namespaces` and :class:`AsyncNamespaces`."""

    @endpoint
    def create(
        self,
        name: str,
        *,
        private: bool = True,
        description: str | None = None,
        field_definitions: Mapping[str, str] | None = None,
        timeout: Timeout = None,
    ) -> Plan[Namespace]:
        """A new namespace owned by the caller's user (``ConflictError``, code
        ``namespace_exists``, if the name is taken). A private one is visible to its
        owner, admins and its members; a public one is readable by every user."""
        body = compact(name=name, private=private, description=description,
                       field_definitions=dict(field_definitions) if field_definitions is not None else None)
        return Namespace.model_validate((yield Send(RequestOptions(
            "POST", "/namespaces", json=body, timeout=timeout))).json())

    @listing
    def list(self, *, owner: str | None = None, limit: int | None = None, timeout: Timeout = None) -> Listing[Namespace]:
        """The namespaces the key can see; ``owner`` = ``"self"``, a username or ``"all"`` (default)."""
        return Listing(Namespace, lambda cursor: RequestOptions(
            "GET", "/namespaces", params={"owner": owner, "limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, namespace: str | Namespace, *, timeout: Timeout = None) -> Plan[Namespace]:
        """One namespace (``NotFoundError`` also when it exists but the key cannot see it)."""
        return Namespace.model_validate((yield Send(RequestOptions(
            "GET", f"/namespaces/{seg(_ns(namespace))}", timeout=timeout))).json())

    @endpoint
    def update(
        self,
        namespace: str | Namespace,
        *,
        name: str | None = None,
        private: bool | None = None,
        description: str | None = None,
        field_definitions: Mapping[str, str] | None = None,
        timeout: Timeout = None,
    ) -> Plan[Namespace]:
        """Change what is given; ``name`` renames it (keys restricted to it keep their
        access: grants are held by id)."""
        body = compact(name=name, private=private, description=description,
                       field_definitions=dict(field_definitions) if field_definitions is not None else None)
        return Namespace.model_validate((yield Send(RequestOptions(
            "PATCH", f"/namespaces/{seg(_ns(namespace))}", json=body, timeout=timeout))).json())

    @endpoint
    def delete(self, namespace: str | Namespace, *, force: bool = False, timeout: Timeout = None) -> Plan[None]:
        """Delete it; a namespace that still holds datasets needs ``force=True`` (else
        ``ConflictError``), which deletes them too."""
        yield Send(RequestOptions("DELETE", f"/namespaces/{seg(_ns(namespace))}",
                                  params={"force": True if force else None}, timeout=timeout))

    @listing
    def members(self, namespace: str | Namespace, *, timeout: Timeout = None) -> Listing[NamespaceMember]:
        """The users it is shared with, and how (read or write)."""
        return Listing(NamespaceMember, lambda cursor: RequestOptions(
            "GET", f"/namespaces/{seg(_ns(namespace))}/members", params={"cursor": cursor}, timeout=timeout))

    @endpoint
    def add_member(
        self, namespace: str | Namespace, username: str, *, access: Literal["read", "write"] = "read",
        timeout: Timeout = None,
    ) -> Plan[NamespaceMember]:
        """Share it with a user (or change how): ``read`` or ``write``."""
        opts = RequestOptions("POST", f"/namespaces/{seg(_ns(namespace))}/members",
                              json={"username": username, "access": access}, timeout=timeout)
        return NamespaceMember.model_validate((yield Send(opts)).json())

    @endpoint
    def remove_member(self, namespace: str | Namespace, username: str, *, timeout: Timeout = None) -> Plan[None]:
        """Stop sharing it with a user."""
        yield Send(RequestOptions("DELETE", f"/namespaces/{seg(_ns(namespace))}/members/{seg(username)}",
                                  timeout=timeout))


class Namespaces(NamespacesAPI, SyncResource):
    """``client.namespaces``: groups of datasets and their sharing."""


class AsyncNamespaces(NamespacesAPI, AsyncResource):
    """``client.namespaces`` of :class:`~runyard.AsyncClient` (coroutines)."""

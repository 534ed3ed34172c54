"""``client.secrets``: values go in, only masked metadata comes back out."""

from __future__ import annotations

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Secret
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Secrets", "AsyncSecrets"]


def _set_request(
    name: str, value: str, display_name: str | None, description: str | None, category: str | None, force: bool,
    timeout: Timeout,
) -> RequestOptions:
    body = compact(value=value, display_name=display_name, description=description, category=category)
    # PUT is idempotent by nature: no idempotency key needed for its retries.
    return RequestOptions(
        "PUT", f"/secrets/{seg(name)}", params={"force": True} if force else None, json=body, timeout=timeout
    )


class SecretsAPI:
    """``client.secrets``, written once for :class:`Secrets` and :class:`AsyncSecrets`."""

    @endpoint
    def set(
        self,
        name: str,
        value: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        category: str | None = None,
        force: bool = False,
        timeout: Timeout = None,
    ) -> Plan[Secret]:
        """Store a secret. An existing name raises :class:`~runyard.ConflictError` unless ``force``."""
        opts = _set_request(name, value, display_name, description, category, force, timeout)
        return Secret.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Secret]:
        """The workspace's secrets: names and masked values, never the values."""
        return Listing(Secret, lambda cursor: RequestOptions(
            "GET", "/secrets", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def delete(self, name: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a secret; tools that need it fail to start runs until it is set again."""
        yield Send(RequestOptions("DELETE", f"/secrets/{seg(name)}", timeout=timeout))


class Secrets(SecretsAPI, SyncResource):
    """``client.secrets``: values go in, only masked metadata comes back out."""


class AsyncSecrets(SecretsAPI, AsyncResource):
    """``client.secrets`` of :class:`~runyard.AsyncClient` (coroutines)."""

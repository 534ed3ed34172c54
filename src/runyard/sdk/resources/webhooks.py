"""``client.webhooks``: a URL that runs a tool with the JSON (or form fields) posted to it.

``create`` returns the hook **with its URL** (``<base>/hooks/<token>``): the only time it is
shown — the server keeps only the token's hash. Whoever holds the URL can call it; a
``signature`` makes the server check an HMAC of each request's body as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Webhook
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Webhooks", "AsyncWebhooks"]


def _id(webhook: str | Webhook) -> str:
    return webhook.id if isinstance(webhook, Webhook) else str(webhook)


def _signature(signature: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return compact(**signature) if signature is not None else None


class WebhooksAPI:
    """``client.webhooks``, written once for :class:`Webhooks` and :class:`AsyncWebhooks`."""

    @endpoint
    def create(
        self,
        tool: str | None = None,
        *,
        workflow: str | None = None,
        signature: Mapping[str, Any] | None = None,
        rate_per_s: float | None = None,
        burst: int | None = None,
        enabled: bool | None = None,
        timeout: Timeout = None,
    ) -> Plan[Webhook]:
        """A new hook running ``tool`` (or ``workflow``). Its ``url`` is in the result this
        once. ``signature``: ``{secret, header?, algorithm? ("sha256" | "sha1"), format?
        ("prefixed" | "hex" | "stripe"), timestamp_header?, tolerance_s?}`` (bad settings:
        ``invalid_signature_config``); ``rate_per_s`` (default 10) and ``burst`` (20) bound
        how often it may be called."""
        body = compact(tool=tool, workflow=workflow, signature=_signature(signature), rate_per_s=rate_per_s,
                       burst=burst, enabled=enabled)
        return Webhook.model_validate((yield Send(RequestOptions(
            "POST", "/webhooks", json=body, timeout=timeout))).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Webhook]:
        """The hooks the key can see, newest first (without their URLs or secrets)."""
        return Listing(Webhook, lambda cursor: RequestOptions(
            "GET", "/webhooks", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, webhook: str | Webhook, *, timeout: Timeout = None) -> Plan[Webhook]:
        """One hook, without its URL (``NotFoundError``, code ``webhook_not_found``)."""
        return Webhook.model_validate((yield Send(RequestOptions(
            "GET", f"/webhooks/{seg(_id(webhook))}", timeout=timeout))).json())

    @endpoint
    def update(
        self,
        webhook: str | Webhook,
        *,
        tool: str | None = None,
        workflow: str | None = None,
        signature: Mapping[str, Any] | None = None,
        remove_signature: bool = False,
        rate_per_s: float | None = None,
        burst: int | None = None,
        enabled: bool | None = None,
        timeout: Timeout = None,
    ) -> Plan[Webhook]:
        """Change what is given (the URL stays the same); ``remove_signature=True`` stops
        checking signatures."""
        if remove_signature and signature is not None:
            raise ValueError("give signature or remove_signature, not both")
        body = compact(tool=tool, workflow=workflow, signature=_signature(signature), rate_per_s=rate_per_s,
                       burst=burst, enabled=enabled)
        if remove_signature:
            body["signature"] = None
        return Webhook.model_validate((yield Send(RequestOptions(
            "PATCH", f"/webhooks/{seg(_id(webhook))}", json=body, timeout=timeout))).json())

    @endpoint
    def delete(self, webhook: str | Webhook, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a hook: its URL answers 404 from then on."""
        yield Send(RequestOptions("DELETE", f"/webhooks/{seg(_id(webhook))}", timeout=timeout))


class Webhooks(WebhooksAPI, SyncResource):
    """``client.webhooks``: URLs that run tools."""


class AsyncWebhooks(WebhooksAPI, AsyncResource):
    """``client.webhooks`` of :class:`~runyard.AsyncClient` (coroutines)."""

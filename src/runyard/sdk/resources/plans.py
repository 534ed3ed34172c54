"""``client.plans``: the workspace's plan (requests per minute, generated rows per hour)."""

from __future__ import annotations

from typing import Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Plan, Send, endpoint
from ..models import WorkspacePlan
from ._resource import AsyncResource, SyncResource

__all__ = ["Plans", "AsyncPlans"]

PlanName = Literal["free", "pro", "enterprise", "custom", "unlimited"]


class PlansAPI:
    """``client.plans``, written once for :class:`Plans` and :class:`AsyncPlans`."""

    @endpoint
    def get(self, *, timeout: Timeout = None) -> Plan[WorkspacePlan]:
        """The workspace's plan and limits (any key may read them)."""
        return WorkspacePlan.model_validate((yield Send(RequestOptions("GET", "/workspace/plan", timeout=timeout))).json())

    @endpoint
    def set(
        self, plan: PlanName, *, requests_per_minute: int | None = None, rows_per_hour: int | None = None,
        storage_bytes: int | None = None, timeout: Timeout = None,
    ) -> Plan[WorkspacePlan]:
        """Set the workspace's plan (the operator only: the bootstrap admin user's key).
        ``requests_per_minute`` and ``rows_per_hour`` go with ``custom`` and ``enterprise``
        (None: unlimited); free and pro have fixed limits. ``storage_bytes`` (any plan) is the
        workspace's storage quota (None: the server's default)."""
        body: dict[str, object] = {"plan": plan}
        if requests_per_minute is not None:
            body["requests_per_minute"] = requests_per_minute
        if rows_per_hour is not None:
            body["rows_per_hour"] = rows_per_hour
        if storage_bytes is not None:
            body["storage_bytes"] = storage_bytes
        # PUT is idempotent by nature: no idempotency key needed for its retries.
        opts = RequestOptions("PUT", "/workspace/plan", json=body, timeout=timeout)
        return WorkspacePlan.model_validate((yield Send(opts)).json())


class Plans(PlansAPI, SyncResource):
    """``client.plans``: the workspace's plan."""


class AsyncPlans(PlansAPI, AsyncResource):
    """``client.plans`` of :class:`~runyard.AsyncClient` (coroutines)."""

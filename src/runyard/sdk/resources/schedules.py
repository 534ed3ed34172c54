"""``client.schedules``: run a tool on a cron expression or every N seconds.

A schedule runs as the user who made it (authorised again at every tick). Exactly one of
``cron`` (with ``timezone``, default UTC) and ``interval_s`` is given; a bad one is a
``ValidationError`` with the code ``invalid_cron``, ``invalid_timezone``,
``interval_too_short`` or ``invalid_schedule``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import Schedule, ScheduleTimes
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Schedules", "AsyncSchedules", "Overlap"]

#: What a tick does while the schedule's previous run has not ended.
Overlap = Literal["skip", "queue", "cancel_previous"]


def _id(schedule: str | Schedule) -> str:
    return schedule.id if isinstance(schedule, Schedule) else str(schedule)


class SchedulesAPI:
    """``client.schedules``, written once for :class:`Schedules` and :class:`AsyncSchedules`."""

    @endpoint
    def create(
        self,
        tool: str | None = None,
        *,
        workflow: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        interval_s: float | None = None,
        enabled: bool | None = None,
        overlap: Overlap | None = None,
        max_catch_up: int | None = None,
        timeout: Timeout = None,
    ) -> Plan[Schedule]:
        """A new schedule of ``tool`` (by name; or ``workflow``) with these ``inputs``: on
        ``cron`` (5 fields or ``@daily``…, read on ``timezone``'s wall clock) or every
        ``interval_s`` seconds. ``overlap`` (default ``skip``) says what a tick does while
        the previous run goes on; ``max_catch_up`` (default 1) how many missed ticks fire
        after downtime. A tool that does not exist is ``invalid_target``, inputs it does not
        take ``invalid_inputs``."""
        body = compact(tool=tool, workflow=workflow, inputs=dict(inputs) if inputs is not None else None, cron=cron,
                       timezone=timezone, interval_s=interval_s, enabled=enabled, overlap=overlap,
                       max_catch_up=max_catch_up)
        return Schedule.model_validate((yield Send(RequestOptions(
            "POST", "/schedules", json=body, timeout=timeout))).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Schedule]:
        """The schedules the key can see (an admin: the workspace's; else its user's), newest first."""
        return Listing(Schedule, lambda cursor: RequestOptions(
            "GET", "/schedules", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @endpoint
    def get(self, schedule: str | Schedule, *, timeout: Timeout = None) -> Plan[Schedule]:
        """One schedule (``NotFoundError``, code ``schedule_not_found``, also when the key cannot see it)."""
        return Schedule.model_validate((yield Send(RequestOptions(
            "GET", f"/schedules/{seg(_id(schedule))}", timeout=timeout))).json())

    @endpoint
    def update(
        self,
        schedule: str | Schedule,
        *,
        tool: str | None = None,
        workflow: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        interval_s: float | None = None,
        enabled: bool | None = None,
        overlap: Overlap | None = None,
        max_catch_up: int | None = None,
        timeout: Timeout = None,
    ) -> Plan[Schedule]:
        """Change what is given. A new timing (``cron`` or ``interval_s`` replaces the other),
        or enabling, starts it afresh from now and clears ``disabled_reason``."""
        body = compact(tool=tool, workflow=workflow, inputs=dict(inputs) if inputs is not None else None, cron=cron,
                       timezone=timezone, interval_s=interval_s, enabled=enabled, overlap=overlap,
                       max_catch_up=max_catch_up)
        return Schedule.model_validate((yield Send(RequestOptions(
            "PATCH", f"/schedules/{seg(_id(schedule))}", json=body, timeout=timeout))).json())

    @endpoint
    def delete(self, schedule: str | Schedule, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a schedule (its runs stay)."""
        yield Send(RequestOptions("DELETE", f"/schedules/{seg(_id(schedule))}", timeout=timeout))

    @endpoint
    def next_times(self, schedule: str | Schedule, count: int = 5, *, timeout: Timeout = None) -> Plan[ScheduleTimes]:
        """The next ``count`` (1–100) times it fires from now, UTC (whether or not it is enabled)."""
        return ScheduleTimes.model_validate((yield Send(RequestOptions(
            "GET", f"/schedules/{seg(_id(schedule))}/next", params={"count": count}, timeout=timeout))).json())


class Schedules(SchedulesAPI, SyncResource):
    """``client.schedules``: tools run on a cron expression or an interval."""


class AsyncSchedules(SchedulesAPI, AsyncResource):
    """``client.schedules`` of :class:`~runyard.AsyncClient` (coroutines)."""

"""Schedules: a tool run on a cron expression or an interval, as the user who made it.

Who sees what: an admin key sees every schedule of the workspace; any other key sees only
its own user's (someone else's is 404 ``schedule_not_found``). Creating, changing and
deleting take the member role. A key restricted to some tools or data can do none of it
(403 ``restricted``): a schedule runs as its user, with the user's whole access, so a
restricted key must not be able to make one.

Each time a schedule fires its user is authorised again: a user that was deleted, or no
longer has the member role, disables the schedule (``disabled_reason`` says why); so does
a target tool that no longer exists or no longer takes the schedule's inputs.

Firing (``fire_due``, called by the scheduler loop of every worker node): the database
decides, by a compare-and-set on ``next_fire_at`` (see ``runyard.triggers.schedule``), so a
tick starts exactly one run however many nodes poll. The run is created after the
compare-and-set commits: a node dying between the two loses that tick (at most once).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import DomainError, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.runs import TERMINAL_STATUSES
from runyard.services.trigger_targets import Targets, owned_row, parse_target, target_of
from runyard.services.users import UserService
from runyard.store.db import Database
from runyard.store.tables import runs
from runyard.store.tables_triggers import schedules
from runyard.timeutil import as_utc, rfc3339, utcnow
from runyard.triggers.schedule import (
    DEFAULT_MIN_INTERVAL_S,
    OverlapAction,
    OverlapPolicy,
    ScheduleError,
    ScheduleSpec,
    advance,
    due,
    next_times,
    overlap_action,
)

log = logging.getLogger(__name__)

READ_SCHEDULES = Permission("viewer", "read schedules", unrestricted=True)
WRITE_SCHEDULES = Permission("member", "manage schedules", unrestricted=True)
TARGET_KINDS = ("tool",)  # "workflow" comes with the workflow engine
MAX_CATCH_UP = 100
MAX_NEXT = 100
FIRE_BATCH = 100  # due schedules handled per poll


def schedule_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"], "object": "schedule", **target_of(row).view(), "user_id": m["user_id"],
        "inputs": m["inputs"] or {}, "cron": m["cron"], "timezone": m["timezone"], "interval_s": m["interval_s"],
        "enabled": m["enabled"], "overlap": m["overlap"], "max_catch_up": m["max_catch_up"],
        "next_fire_at": rfc3339(m["next_fire_at"]) if m["enabled"] else None,
        "last_fire_at": rfc3339(m["last_fire_at"]), "last_run_id": m["last_run_id"],
        "disabled_reason": m["disabled_reason"],
        "created_at": rfc3339(m["created_at"]), "updated_at": rfc3339(m["updated_at"]),
    }


class ScheduleService:
    def __init__(self, db: Database, targets: Targets, users: UserService, *,
                 min_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> None:
        self.db = db
        self.targets = targets
        self.runs = targets.runs
        self.users = users
        self.min_interval_s = min_interval_s

    # -- validation ----------------------------------------------------------------------
    def spec(self, cron: Any, timezone: Any, interval_s: Any) -> ScheduleSpec:
        if timezone is not None and not isinstance(timezone, str):
            raise ValidationFailed("timezone must be an IANA name", code="invalid_timezone",
                                   details={"field": "timezone"})
        try:
            return ScheduleSpec(cron=cron, timezone=timezone or "UTC", interval_s=interval_s,
                                min_interval_s=self.min_interval_s)
        except ScheduleError as exc:
            field = {"invalid_cron": "cron", "invalid_timezone": "timezone",
                     "interval_too_short": "interval_s"}.get(exc.code, "cron")
            raise ValidationFailed(exc.message, code=exc.code, details={"field": field}) from exc

    @staticmethod
    def _check_policy(overlap: Any, max_catch_up: Any) -> None:
        if overlap not in [p.value for p in OverlapPolicy]:
            raise ValidationFailed("overlap must be skip, queue or cancel_previous", details={"field": "overlap"})
        if isinstance(max_catch_up, bool) or not isinstance(max_catch_up, int) or not 1 <= max_catch_up <= MAX_CATCH_UP:
            raise ValidationFailed(f"max_catch_up must be an integer in 1..{MAX_CATCH_UP}",
                                   details={"field": "max_catch_up"})

    # -- on behalf of a principal ----------------------------------------------------------
    def _visible_row(self, conn: sa.Connection, principal: Principal, schedule_id: str) -> Any:
        return owned_row(conn, schedules, principal, schedule_id, what="schedule", code="schedule_not_found",
                         detail="schedule_id")

    def create(self, principal: Principal, *, tool: Any = None, workflow: Any = None, inputs: Any = None,
               cron: Any = None, timezone: Any = None, interval_s: Any = None, enabled: bool = True,
               overlap: Any = "skip", max_catch_up: Any = 1) -> dict[str, Any]:
        WRITE_SCHEDULES.check(principal)
        if principal.user_id is None:
            raise ValidationFailed("this key belongs to no user; a schedule runs as a user")
        target = parse_target(tool, workflow)
        spec = self.spec(cron, timezone, interval_s)
        self._check_policy(overlap, max_catch_up)
        inputs = self.targets.check(principal, target, inputs, validate=True)
        now = utcnow()
        row = {"id": new_id("sch"), "workspace_id": principal.workspace_id, "user_id": principal.user_id,
               "target_kind": target.kind, "target_name": target.name, "inputs": inputs, "cron": spec.cron,
               "timezone": spec.timezone, "interval_s": spec.interval_s, "enabled": bool(enabled),
               "overlap": overlap, "max_catch_up": max_catch_up, "last_fire_at": now,
               "next_fire_at": advance(spec, now), "last_run_id": None, "disabled_reason": None,
               "created_at": now, "updated_at": now}
        with self.db.write() as conn:
            conn.execute(schedules.insert().values(**row))
            return schedule_view(conn.execute(sa.select(schedules).where(schedules.c.id == row["id"])).one())

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        READ_SCHEDULES.check(principal)
        query = sa.select(schedules).where(schedules.c.workspace_id == principal.workspace_id)
        if principal.role != "admin":
            query = query.where(schedules.c.user_id == (principal.user_id or ""))
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=schedules.c.id, id_col=schedules.c.id,
                                        descending=True, cursor=cursor, limit=limit, include_total=include_total)
        return Page([schedule_view(r) for r in rows], nxt, total)

    def get(self, principal: Principal, schedule_id: str) -> dict[str, Any]:
        READ_SCHEDULES.check(principal)
        with self.db.read() as conn:
            return schedule_view(self._visible_row(conn, principal, schedule_id))

    def update(self, principal: Principal, schedule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the fields given. A new timing, or enabling, starts the schedule afresh from
        now (no catching up on what passed while it was off) and clears ``disabled_reason``."""
        WRITE_SCHEDULES.check(principal)
        with self.db.read() as conn:
            row = self._visible_row(conn, principal, schedule_id)
        values: dict[str, Any] = {}
        target = target_of(row)
        if changes.get("tool") is not None or changes.get("workflow") is not None:
            target = parse_target(changes.get("tool"), changes.get("workflow"))
            values.update(target_kind=target.kind, target_name=target.name)
        if values or "inputs" in changes:
            inputs = changes["inputs"] if changes.get("inputs") is not None else row.inputs
            values["inputs"] = self.targets.check(principal, target, inputs, validate=True)
        timing = {"cron", "interval_s", "timezone"} & set(changes)
        if {"cron", "interval_s"} & timing:
            cron, interval_s = changes.get("cron"), changes.get("interval_s")
        else:
            cron, interval_s = row.cron, row.interval_s
        spec = self.spec(cron, changes.get("timezone", row.timezone), interval_s)
        if timing:
            values.update(cron=spec.cron, interval_s=spec.interval_s, timezone=spec.timezone)
        overlap = changes.get("overlap") if changes.get("overlap") is not None else row.overlap
        catch_up = changes.get("max_catch_up") if changes.get("max_catch_up") is not None else row.max_catch_up
        self._check_policy(overlap, catch_up)
        values.update(overlap=overlap, max_catch_up=catch_up)
        enabled = row.enabled if changes.get("enabled") is None else bool(changes["enabled"])
        now = utcnow()
        if enabled and (timing or not row.enabled):
            values.update(last_fire_at=now, next_fire_at=advance(spec, now), disabled_reason=None)
        if not enabled and row.enabled:
            values["disabled_reason"] = None  # turned off by hand: no reason to show
        values.update(enabled=enabled, updated_at=now)
        with self.db.write() as conn:
            conn.execute(schedules.update().where(schedules.c.id == row.id).values(**values))
            return schedule_view(conn.execute(sa.select(schedules).where(schedules.c.id == row.id)).one())

    def delete(self, principal: Principal, schedule_id: str) -> None:
        WRITE_SCHEDULES.check(principal)
        with self.db.write() as conn:
            row = self._visible_row(conn, principal, schedule_id)
            conn.execute(schedules.delete().where(schedules.c.id == row.id))

    def next(self, principal: Principal, schedule_id: str, count: int = 5) -> dict[str, Any]:
        """The next ``count`` times it would fire (from now; whether or not it is enabled)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_NEXT:
            raise ValidationFailed(f"count must be in 1..{MAX_NEXT}", details={"field": "count"})
        row_view = self.get(principal, schedule_id)
        spec = self.spec(row_view["cron"], row_view["timezone"], row_view["interval_s"])
        times = next_times(spec, utcnow(), count)
        return {"object": "schedule_times", "schedule_id": schedule_id, "enabled": row_view["enabled"],
                "times": [rfc3339(t) for t in times]}

    # -- the scheduler -----------------------------------------------------------------------
    def fire_due(self, now: datetime | None = None) -> int:
        """Fire every enabled schedule whose tick has come; the number of runs started."""
        now = now or utcnow()
        with self.db.read() as conn:
            rows = conn.execute(sa.select(schedules).where(schedules.c.enabled.is_(True),
                                                           schedules.c.next_fire_at <= now)
                                .order_by(schedules.c.next_fire_at).limit(FIRE_BATCH)).all()
        started = 0
        for row in rows:
            try:
                started += self._fire(row, now)
            except Exception:
                log.exception("firing schedule %s failed", row.id)
        return started

    def _disable(self, row: Any, reason: str) -> int:
        with self.db.write() as conn:
            conn.execute(schedules.update().where(schedules.c.id == row.id, schedules.c.enabled.is_(True))
                         .values(enabled=False, disabled_reason=reason, updated_at=utcnow()))
        log.info("schedule %s disabled: %s", row.id, reason)
        return 0

    def _owner(self, row: Any) -> Principal | str:
        """The principal the schedule runs as, or why it cannot run."""
        return self.users.acting_as(row.workspace_id, row.user_id, on_behalf_of=row.id, whose="the schedule's owner")

    def _fire(self, row: Any, now: datetime) -> int:
        old_next = as_utc(row.next_fire_at)
        last = as_utc(row.last_fire_at) or as_utc(row.created_at)
        assert old_next is not None and last is not None
        try:
            spec = self.spec(row.cron, row.timezone, row.interval_s)
        except DomainError as exc:
            return self._disable(row, f"{exc.code}: {exc.message}")
        owner = self._owner(row)
        if isinstance(owner, str):
            return self._disable(row, owner)
        gone = self.targets.gone(owner, target_of(row))
        if gone is not None:
            return self._disable(row, gone)
        previous = None
        if row.last_run_id:
            with self.db.read() as conn:
                previous = conn.execute(sa.select(runs.c.status).where(runs.c.id == row.last_run_id)).scalar()
        action = overlap_action(row.overlap, previous is not None and previous not in TERMINAL_STATUSES)
        if action is OverlapAction.QUEUE:
            return 0  # the tick stays due: it fires at the first poll after the previous run ended
        ticks = due(spec, last, now, max_catch_up=row.max_catch_up)
        tick = ticks[-1] if ticks else last
        new_next = advance(spec, tick) if ticks else next_times(spec, now)[0]
        with self.db.write() as conn:
            won = conn.execute(schedules.update().where(
                schedules.c.id == row.id, schedules.c.next_fire_at == old_next, schedules.c.enabled.is_(True),
            ).values(next_fire_at=new_next, last_fire_at=tick)).rowcount == 1
        if not won or not ticks or action is OverlapAction.SKIP:
            return 0  # another node fired it, or nothing to start
        if action is OverlapAction.CANCEL_PREVIOUS_AND_START:
            try:
                self.runs.cancel(owner, row.last_run_id)
            except DomainError:
                pass  # gone or already over: nothing to cancel
        started = 0
        last_run_id = None
        for _ in ticks:
            try:
                run = self.targets.start(owner, target_of(row), inputs=row.inputs or {}, trigger="schedule",
                                         source=row.id)
            except DomainError as exc:
                if exc.status in (400, 403, 404):  # the target no longer takes this schedule
                    self._disable(row, f"{exc.code}: {exc.message}")
                    break
                raise
            last_run_id = run["id"]
            started += 1
        if last_run_id is not None:
            with self.db.write() as conn:
                conn.execute(schedules.update().where(schedules.c.id == row.id).values(last_run_id=last_run_id))
        return started

"""Schedules: when a cron expression or an interval fires, and what a scheduler does about it.

Pure functions over a :class:`ScheduleSpec`; nothing here keeps time, sleeps or touches a
database. Every datetime going in must be timezone-aware; every datetime coming out is UTC.

Cron schedules are evaluated on the wall clock of their IANA ``timezone`` (``0 9 * * 1-5`` in
``Europe/Berlin`` is 09:00 Berlin time, summer and winter). Across daylight-saving changes:

- a wall time that does not exist (the hour skipped in spring) fires once, shifted forward by
  the gap (``30 2 * * *`` fires at 03:30 on that day); ticks that land on the same instant fire
  once;
- a wall time that happens twice (the hour repeated in autumn) fires at its first occurrence
  only, unless the hour field is ``*`` — an hourly or sub-hourly job keeps its real-time
  cadence and fires in both copies of the repeated hour (the Vixie cron rule).

Interval schedules are absolute: ``interval_s=3600`` fires every 3600 s of real time, anchored
at ``anchor`` (default the Unix epoch, so every node computes the same ticks), DST irrelevant.

Exactly once per tick, with several nodes
-----------------------------------------
The database decides, not a timer per node. A schedule row carries ``next_fire_at`` (the tick
it waits for) and ``last_fire_at`` (the last tick fired; on create or enable, the time it was
created/enabled, and ``next_fire_at = advance(spec, that time)``). Every node polls::

    SELECT id, next_fire_at, last_fire_at, ... FROM schedules
     WHERE enabled AND next_fire_at <= :now

and for each row computes ``ticks = due(spec, last_fire_at, now)`` and
``new_next = advance(spec, ticks[-1])`` (the first tick after ``now``: missed ticks beyond
``max_catch_up`` are skipped, not queued). Then, in one transaction with creating the runs::

    UPDATE schedules SET next_fire_at = :new_next, last_fire_at = :ticks[-1]
     WHERE id = :id AND next_fire_at = :old_next_fire_at

Only the node whose compare-and-set matches one row fires ``ticks``; every other node's UPDATE
matches zero rows (the value moved on) and it fires nothing. Because ``due`` only returns ticks
strictly after ``last_fire_at`` and ``advance`` moves strictly forward, a tick is never fired
twice. A unique key on the runs' ``(schedule_id, tick)`` is a cheap second guard.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

__all__ = [
    "DEFAULT_MIN_INTERVAL_S",
    "OverlapAction",
    "OverlapPolicy",
    "ScheduleError",
    "ScheduleSpec",
    "advance",
    "due",
    "iter_times",
    "next_times",
    "overlap_action",
]

DEFAULT_MIN_INTERVAL_S = 1.0
MAX_COUNT = 1000  # next_times / due: bounded work per call
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The widest distance between a wall time and the instant(s) it maps to that we search around
# (DST shifts are 30 min to 2 h in practice); bounds the cron search windows.
_MARGIN = timedelta(hours=3)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """An invalid schedule; ``code`` is stable (``invalid_cron``, ``invalid_timezone``,
    ``interval_too_short``, ``invalid_schedule``) and fit for an API error body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _load_zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise ScheduleError("invalid_timezone", f"unknown timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # ValueError: keys like "../x"
        raise ScheduleError("invalid_timezone", f"unknown timezone {name!r} (use an IANA name)") from exc


def _normalise_cron(expr: str) -> str:
    if not isinstance(expr, str):
        raise ScheduleError("invalid_cron", "cron must be a string")
    text = " ".join(expr.split())
    text = _MACROS.get(text.lower(), text)
    if len(text.split(" ")) != 5:
        # 6/7-field (seconds, years) variants are not portable; minute resolution is the contract.
        raise ScheduleError("invalid_cron", f"cron {expr!r} must have 5 fields: minute hour day month weekday")
    if not croniter.is_valid(text):
        raise ScheduleError("invalid_cron", f"invalid cron expression {expr!r}")
    try:  # is_valid accepts expressions that never match, such as "0 0 31 2 *"
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterError, ValueError) as exc:
        raise ScheduleError("invalid_cron", f"cron {expr!r} never fires") from exc
    return text


@dataclass(frozen=True)
class ScheduleSpec:
    """Either ``cron`` (+ ``timezone``, default UTC) or ``interval_s``; validated on creation.

    ``min_interval_s`` is the platform's floor for intervals (a setting, not part of the spec's
    identity). Raises :class:`ScheduleError`.
    """

    cron: str | None = None
    timezone: str = "UTC"
    interval_s: float | None = None
    anchor: datetime | None = None
    min_interval_s: float = field(default=DEFAULT_MIN_INTERVAL_S, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_s is None):
            raise ScheduleError("invalid_schedule", "give exactly one of cron or interval_s")
        object.__setattr__(self, "timezone", self.timezone or "UTC")
        _load_zone(self.timezone)  # checked for interval schedules too: a typo is still a typo
        if self.cron is not None:
            object.__setattr__(self, "cron", _normalise_cron(self.cron))
        else:
            interval = self.interval_s
            if isinstance(interval, bool) or not isinstance(interval, int | float) or interval != interval:
                raise ScheduleError("invalid_schedule", "interval_s must be a number of seconds")
            if interval < self.min_interval_s:
                raise ScheduleError(
                    "interval_too_short", f"interval_s must be at least {self.min_interval_s:g} s, got {interval:g}"
                )
            if interval > 366 * 86400 * 100:
                raise ScheduleError("invalid_schedule", "interval_s is too long")
            if self.anchor is not None:
                object.__setattr__(self, "anchor", _aware(self.anchor, "anchor"))

    @property
    def zone(self) -> ZoneInfo:
        return _load_zone(self.timezone)  # ZoneInfo caches instances itself


# -- time helpers -----------------------------------------------------------------------------


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive datetime is ambiguous (local? UTC?); refusing beats a silent one-hour bug.
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _hour_is_wildcard(cron: str) -> bool:
    return cron.split(" ")[1] == "*"


def _instants(wall: datetime, zone: ZoneInfo, repeat_in_fold: bool) -> list[datetime]:
    """The UTC instants a matching wall time fires at (see the module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first < second:  # the wall time happens twice (fold)
        return [first, second] if repeat_in_fold else [first]
    return [first]  # nonexistent (gap): fold=0 uses the earlier offset, i.e. shifted forward


def _cron_forward(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    assert spec.cron is not None
    zone = spec.zone
    repeat = _hour_is_wildcard(spec.cron)
    found: set[datetime] = set()
    it = croniter(spec.cron, _wall(after, zone) - _MARGIN)
    while True:
        try:
            wall = it.get_next(datetime)
        except (CroniterError, ValueError):  # past the search horizon: no more ticks
            break
        found.update(t for t in _instants(wall, zone, repeat) if t > after)
        if len(found) >= count:
            kth = sorted(found)[count - 1]
            # later walls only map to instants later than this one: done
            if wall > _wall(kth, zone) + _MARGIN:
                break
    return sorted(found)[:count]


def _cron_backward(spec: ScheduleSpec, after: datetime, upto: datetime, count: int) -> list[datetime]:
    """The latest ``count`` ticks in ``(after, upto]``, ascending."""
    assert spec.cron is not None
    zone = spec.zone
    repeat = _hour_is_wildcard(spec.cron)
    floor_wall = _wall(after, zone) - _MARGIN
    found: set[datetime] = set()
    it = croniter(spec.cron, _wall(upto, zone) + _MARGIN)
    while True:
        try:
            wall = it.get_prev(datetime)
        except (CroniterError, ValueError):
            break
        if wall < floor_wall:
            break  # nothing earlier can be after `after`
        found.update(t for t in _instants(wall, zone, repeat) if after < t <= upto)
        if len(found) >= count:
            kth = sorted(found)[-count]
            if wall < _wall(kth, zone) - _MARGIN:
                break
    return sorted(found)[-count:]


def _interval_parts(spec: ScheduleSpec) -> tuple[datetime, timedelta]:
    assert spec.interval_s is not None
    return spec.anchor or EPOCH, timedelta(seconds=spec.interval_s)


def _interval_index(anchor: datetime, step: timedelta, at: datetime) -> int:
    """The index k of the last tick anchor + k*step at or before ``at`` (integer microseconds,
    so millions of ticks later there is no float drift)."""
    return (at - anchor) // step


def _check_count(count: int) -> None:
    if not isinstance(count, int) or count < 1 or count > MAX_COUNT:
        raise ValueError(f"count must be between 1 and {MAX_COUNT}")


# -- public API -------------------------------------------------------------------------------


def next_times(spec: ScheduleSpec, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` ticks strictly after ``after``, ascending, in UTC."""
    _check_count(count)
    after = _aware(after, "after")
    if spec.cron is not None:
        return _cron_forward(spec, after, count)
    anchor, step = _interval_parts(spec)
    first = _interval_index(anchor, step, after) + 1
    return [anchor + step * k for k in range(first, first + count)]


def due(spec: ScheduleSpec, last_fire_at: datetime, now: datetime, *, max_catch_up: int = 1) -> list[datetime]:
    """The ticks to fire now: those in ``(last_fire_at, now]``, at most the latest
    ``max_catch_up`` of them (ascending). After a long downtime that is one run, not a storm;
    ticks up to and including ``last_fire_at`` are never returned again.

    ``last_fire_at`` is the last tick fired, or, for a schedule that never fired, the time it
    was created or enabled (so it does not fire for ticks from before it existed).
    """
    if not isinstance(max_catch_up, int) or max_catch_up < 1 or max_catch_up > MAX_COUNT:
        # 0 would never fire: a poller always sees a tick slightly after it passed
        raise ValueError(f"max_catch_up must be between 1 and {MAX_COUNT}")
    last = _aware(last_fire_at, "last_fire_at")
    now = _aware(now, "now")
    if now <= last:
        return []
    if spec.cron is not None:
        return _cron_backward(spec, last, now, max_catch_up)
    anchor, step = _interval_parts(spec)
    newest = _interval_index(anchor, step, now)
    oldest = max(_interval_index(anchor, step, last) + 1, newest - max_catch_up + 1)
    return [anchor + step * k for k in range(oldest, newest + 1)]


def advance(spec: ScheduleSpec, fired_tick: datetime) -> datetime:
    """The ``next_fire_at`` to store after firing ``fired_tick`` (the newest tick ``due``
    returned): the first tick strictly after it — the value the compare-and-set writes."""
    return next_times(spec, fired_tick, 1)[0]


def iter_times(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """All ticks after ``after``, lazily (a preview or a test; bounded callers only)."""
    current = _aware(after, "after")
    while True:
        batch = next_times(spec, current, 50)
        yield from batch
        current = batch[-1]


# -- overlap ----------------------------------------------------------------------------------


class OverlapPolicy(enum.StrEnum):
    """What a schedule does when a tick comes while its previous run is still running."""

    SKIP = "skip"
    QUEUE = "queue"
    CANCEL_PREVIOUS = "cancel_previous"


class OverlapAction(enum.StrEnum):
    START = "start"  # nothing running: start the run now
    SKIP = "skip"  # record the tick as skipped, start nothing
    QUEUE = "queue"  # create the run held until the previous one ends
    CANCEL_PREVIOUS_AND_START = "cancel_previous_and_start"


def overlap_action(
    policy: OverlapPolicy | str, previous_running: bool, *, queued: int = 0, max_queued: int = 1
) -> OverlapAction:
    """Decide what to do for a tick. ``queued`` is how many runs of this schedule already wait
    behind the running one: ``queue`` holds at most ``max_queued`` (a job always slower than its
    interval would otherwise grow an unbounded backlog); beyond that the tick is skipped."""
    policy = OverlapPolicy(policy)
    if not previous_running:
        return OverlapAction.START
    if policy is OverlapPolicy.SKIP:
        return OverlapAction.SKIP
    if policy is OverlapPolicy.CANCEL_PREVIOUS:
        return OverlapAction.CANCEL_PREVIOUS_AND_START
    return OverlapAction.QUEUE if queued < max_queued else OverlapAction.SKIP

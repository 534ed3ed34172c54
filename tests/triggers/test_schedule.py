"""Schedules: cron and interval ticks across DST, validation codes, due ticks after downtime,
the compare-and-set's advance, overlap decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runyard.triggers.schedule import (
    OverlapAction,
    OverlapPolicy,
    ScheduleError,
    ScheduleSpec,
    advance,
    due,
    iter_times,
    next_times,
    overlap_action,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(times: list[datetime], zone: ZoneInfo) -> list[str]:
    return [t.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") for t in times]


# -- cron across DST --------------------------------------------------------------------------


def test_daily_cron_keeps_its_wall_time_across_berlin_spring_forward() -> None:
    spec = ScheduleSpec(cron="0 9 * * *", timezone="Europe/Berlin")
    times = next_times(spec, utc(2024, 3, 29, 12), 3)
    assert local(times, BERLIN) == ["2024-03-30 09:00 CET", "2024-03-31 09:00 CEST", "2024-04-01 09:00 CEST"]
    assert [t.hour for t in times] == [8, 7, 7]  # UTC moves, the wall clock does not
    assert all(t.tzinfo is UTC for t in times)


def test_a_skipped_wall_time_fires_once_shifted_forward() -> None:
    # 02:30 does not exist in Berlin on 2024-03-31 (02:00 -> 03:00)
    spec = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    times = next_times(spec, utc(2024, 3, 29, 12), 3)
    assert local(times, BERLIN) == ["2024-03-30 02:30 CET", "2024-03-31 03:30 CEST", "2024-04-01 02:30 CEST"]


def test_hourly_cron_skips_nothing_and_doubles_nothing_in_spring() -> None:
    spec = ScheduleSpec(cron="30 * * * *", timezone="Europe/Berlin")
    times = next_times(spec, utc(2024, 3, 31, 0), 4)
    # 01:30 CET, then 03:30 CEST: one real hour later; the nonexistent 02:30 collapses into 03:30
    assert local(times, BERLIN) == [
        "2024-03-31 01:30 CET", "2024-03-31 03:30 CEST", "2024-03-31 04:30 CEST", "2024-03-31 05:30 CEST",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:], strict=False))


def test_repeated_hour_in_autumn_fires_a_daily_job_once_and_an_hourly_job_in_both_copies() -> None:
    daily = ScheduleSpec(cron="30 2 * * *", timezone="Europe/Berlin")
    times = next_times(daily, utc(2024, 10, 26, 12), 2)
    assert local(times, BERLIN) == ["2024-10-27 02:30 CEST", "2024-10-28 02:30 CET"]

    hourly = ScheduleSpec(cron="30 * * * *", timezone="Europe/Berlin")
    times = next_times(hourly, utc(2024, 10, 26, 23), 4)
    assert local(times, BERLIN) == [
        "2024-10-27 01:30 CEST", "2024-10-27 02:30 CEST", "2024-10-27 02:30 CET", "2024-10-27 03:30 CET",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:], strict=False))


def test_new_york_dst_changes() -> None:
    spec = ScheduleSpec(cron="0 8 * * 1-5", timezone="America/New_York")
    # 2024-03-10 (Sunday) clocks go 02:00 -> 03:00; Friday and Monday around it
    times = next_times(spec, utc(2024, 3, 8, 0), 2)
    assert local(times, NEW_YORK) == ["2024-03-08 08:00 EST", "2024-03-11 08:00 EDT"]
    assert [t.hour for t in times] == [13, 12]
    every_15 = ScheduleSpec(cron="*/15 * * * *", timezone="America/New_York")
    # 2024-11-03 01:00-01:59 happens twice: every quarter hour keeps firing, 15 minutes apart
    times = next_times(every_15, utc(2024, 11, 3, 5, 0), 9)
    assert all(b - a == timedelta(minutes=15) for a, b in zip(times, times[1:], strict=False))
    assert local(times, NEW_YORK)[0] == "2024-11-03 01:15 EDT" and local(times, NEW_YORK)[4] == "2024-11-03 01:15 EST"


def test_interval_ticks_are_absolute_and_ignore_dst() -> None:
    spec = ScheduleSpec(interval_s=3600, timezone="Europe/Berlin")
    times = next_times(spec, utc(2024, 3, 31, 0, 10), 4)
    assert times == [utc(2024, 3, 31, 1), utc(2024, 3, 31, 2), utc(2024, 3, 31, 3), utc(2024, 3, 31, 4)]
    anchored = ScheduleSpec(interval_s=90, anchor=utc(2024, 1, 1, 0, 0, 10))
    assert next_times(anchored, utc(2024, 1, 1, 0, 0, 10), 2) == [utc(2024, 1, 1, 0, 1, 40), utc(2024, 1, 1, 0, 3, 10)]
    assert next_times(ScheduleSpec(interval_s=1), utc(2024, 1, 1), 1) == [utc(2024, 1, 1, 0, 0, 1)]


def test_macros_and_iter_times() -> None:
    spec = ScheduleSpec(cron="@hourly")
    assert spec.cron == "0 * * * *"
    it = iter_times(spec, utc(2024, 1, 1))
    assert [next(it) for _ in range(60)][-1] == utc(2024, 1, 3, 12)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "not a cron", "0 0 31 2 *", "* * * * * *", ""])
def test_invalid_cron(expr: str) -> None:
    with pytest.raises(ScheduleError) as err:
        ScheduleSpec(cron=expr)
    assert err.value.code == "invalid_cron"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "", "Europe/Berlinn"])
def test_invalid_timezone(zone: str) -> None:
    with pytest.raises(ScheduleError) as err:
        ScheduleSpec(cron="0 * * * *", timezone=zone or " ")
    assert err.value.code == "invalid_timezone"


def test_interval_too_short_and_other_shapes() -> None:
    for value in (0.5, 0, -10):
        with pytest.raises(ScheduleError) as err:
            ScheduleSpec(interval_s=value)
        assert err.value.code == "interval_too_short"
    with pytest.raises(ScheduleError) as err:
        ScheduleSpec(interval_s=30, min_interval_s=60)
    assert err.value.code == "interval_too_short"
    assert ScheduleSpec(interval_s=60, min_interval_s=60).interval_s == 60
    for kwargs in ({}, {"cron": "* * * * *", "interval_s": 5}):
        with pytest.raises(ScheduleError) as err:
            ScheduleSpec(**kwargs)  # type: ignore[arg-type]
        assert err.value.code == "invalid_schedule"
    with pytest.raises(ValueError, match="timezone-aware"):
        next_times(ScheduleSpec(interval_s=5), datetime(2024, 1, 1), 1)


# -- due / advance ----------------------------------------------------------------------------


def test_due_after_a_long_downtime_returns_one_tick_not_a_storm() -> None:
    spec = ScheduleSpec(cron="* * * * *", timezone="Europe/Berlin")
    last = utc(2024, 1, 1, 12, 0)
    now = utc(2024, 3, 1, 12, 0, 30)  # two months down
    ticks = due(spec, last, now)
    assert ticks == [utc(2024, 3, 1, 12, 0)]
    assert due(spec, last, now, max_catch_up=3) == [utc(2024, 3, 1, 11, 58), utc(2024, 3, 1, 11, 59), utc(2024, 3, 1, 12)]
    nxt = advance(spec, ticks[-1])
    assert nxt == utc(2024, 3, 1, 12, 1) and nxt > now
    interval = ScheduleSpec(interval_s=1)
    assert due(interval, utc(2020, 1, 1), utc(2024, 1, 1, 0, 0, 0, 500000)) == [utc(2024, 1, 1)]
    assert len(due(interval, utc(2020, 1, 1), utc(2024, 1, 1), max_catch_up=5)) == 5


def test_due_never_returns_a_tick_twice_while_polling() -> None:
    spec = ScheduleSpec(cron="*/5 * * * *", timezone="America/New_York")
    created = utc(2024, 11, 3, 4, 2)
    last = created
    next_fire_at = advance(spec, created)
    fired: list[datetime] = []
    now = created
    while now < utc(2024, 11, 3, 8):  # across the repeated hour, polling every 37 s
        now += timedelta(seconds=37)
        if next_fire_at > now:
            assert due(spec, last, now) == []  # nothing due before next_fire_at
            continue
        ticks = due(spec, last, now)
        assert ticks and ticks[0] == next_fire_at
        fired.extend(ticks)
        last, next_fire_at = ticks[-1], advance(spec, ticks[-1])
    assert len(fired) == len(set(fired)) == 48  # 04:05 to 08:00 UTC every 5 minutes, none lost
    assert fired == next_times(spec, created, len(fired))


def test_due_edges() -> None:
    spec = ScheduleSpec(interval_s=10)
    assert due(spec, utc(2024, 1, 1, 0, 0, 10), utc(2024, 1, 1, 0, 0, 10)) == []  # the fired tick itself
    assert due(spec, utc(2024, 1, 1, 0, 0, 10), utc(2024, 1, 1, 0, 0, 5)) == []  # clock behind
    assert due(spec, utc(2024, 1, 1, 0, 0, 10), utc(2024, 1, 1, 0, 0, 20)) == [utc(2024, 1, 1, 0, 0, 20)]
    assert due(spec, utc(2024, 1, 1, 0, 0, 3), utc(2024, 1, 1, 0, 0, 10)) == [utc(2024, 1, 1, 0, 0, 10)]
    with pytest.raises(ValueError):
        due(spec, utc(2024, 1, 1), utc(2024, 1, 2), max_catch_up=0)
    yearly = ScheduleSpec(cron="0 0 1 1 *", timezone="Europe/Berlin")
    assert due(yearly, utc(2020, 6, 1), utc(2024, 6, 1)) == [utc(2023, 12, 31, 23)]


def test_overlap_policy() -> None:
    for policy in OverlapPolicy:
        assert overlap_action(policy, False) is OverlapAction.START
    assert overlap_action("skip", True) is OverlapAction.SKIP
    assert overlap_action("cancel_previous", True) is OverlapAction.CANCEL_PREVIOUS_AND_START
    assert overlap_action(OverlapPolicy.QUEUE, True) is OverlapAction.QUEUE
    assert overlap_action(OverlapPolicy.QUEUE, True, queued=1) is OverlapAction.SKIP  # bounded backlog
    with pytest.raises(ValueError):
        overlap_action("sometimes", True)

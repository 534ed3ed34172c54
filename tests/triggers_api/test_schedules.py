"""Schedules over HTTP on a real server: interval schedules fire once per tick (on two
nodes sharing one PostgreSQL database too), disabled ones never, and a schedule whose
tool or owner is gone disables itself with the reason."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.api import deploy
from tests.support.servers import PgDatabase, Server

TOOL = "def main(n: int = 0):\n    return n\n"


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def _runs(api: httpx.Client, tool: str) -> list[dict[str, Any]]:
    response = api.get("/runs", params={"tool": tool, "limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _eventually(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _schedule(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/schedules", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _assert_one_run_per_tick(api: httpx.Client, tool: str, schedule_id: str, at_least: int) -> None:
    """Every run is a distinct tick: no two within the same second (interval 1 s, epoch-anchored)."""
    stopped = api.patch(f"/schedules/{schedule_id}", json={"enabled": False})
    assert stopped.status_code == 200, stopped.text
    time.sleep(1.0)  # a run being created as it was disabled lands
    runs = _runs(api, tool)
    assert len(runs) >= at_least, runs
    assert {r["trigger"] for r in runs} == {"schedule"}
    created = sorted(_ts(r["created_at"]) for r in runs)
    gaps = [(b - a).total_seconds() for a, b in zip(created, created[1:], strict=False)]
    assert min(gaps) > 0.3, f"two runs for one tick: {created}"
    schedule = api.get(f"/schedules/{schedule_id}").json()
    first, last = _ts(schedule["created_at"]), _ts(schedule["last_fire_at"])
    ticks = int(last.timestamp()) - int(first.timestamp())
    assert len(runs) <= ticks, (len(runs), ticks)


@pytest.mark.slow
def test_an_interval_schedule_fires_one_run_per_tick(api: httpx.Client, unique: str) -> None:
    tool = f"tick-{unique}"
    deploy(api, tool, TOOL)
    schedule = _schedule(api, tool=tool, inputs={"n": 7}, interval_s=1)
    assert schedule["enabled"] and schedule["next_fire_at"] and schedule["target_kind"] == "tool"
    _eventually(lambda: len(_runs(api, tool)) >= 3, what="three scheduled runs")
    runs = _runs(api, tool)
    done = api.get(f"/runs/{runs[-1]['id']}/wait", params={"timeout": 30}).json()
    assert done["status"] == "succeeded" and done["output"] == 7, done
    _assert_one_run_per_tick(api, tool, schedule["id"], 3)
    assert api.get(f"/schedules/{schedule['id']}").json()["last_run_id"] in {r["id"] for r in _runs(api, tool)}


@pytest.fixture
def two_nodes(backend: str, tmp_path: Any) -> Iterator[tuple[Server, Server]]:
    """An API + worker node and a worker-only node on one PostgreSQL database: two schedulers."""
    if backend != "postgres":
        pytest.skip("two nodes can share one database only on PostgreSQL (an SQLite file belongs to one node); CI sets RUNYARD_TEST_DATABASE_URL so this runs there")
    pg = PgDatabase.create()
    first = Server(data_dir=tmp_path / "data", database_url=pg.url, slots=2)
    second = Server(data_dir=first.data_dir, database_url=pg.url, admin_key=first.admin_key, mode="worker", slots=2)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()
        pg.drop()


@pytest.mark.slow
def test_two_nodes_fire_each_tick_once(two_nodes: tuple[Server, Server], unique: str) -> None:
    first, _ = two_nodes
    with first.client() as api:
        tool = f"tick2-{unique}"
        deploy(api, tool, TOOL)
        schedule = _schedule(api, tool=tool, interval_s=1)
        _eventually(lambda: len(_runs(api, tool)) >= 5, timeout=30, what="five scheduled runs")
        _assert_one_run_per_tick(api, tool, schedule["id"], 5)


@pytest.mark.slow
def test_a_disabled_schedule_does_not_fire(api: httpx.Client, unique: str) -> None:
    tool = f"off-{unique}"
    deploy(api, tool, TOOL)
    schedule = _schedule(api, tool=tool, interval_s=1, enabled=False)
    assert schedule["enabled"] is False and schedule["next_fire_at"] is None
    time.sleep(2.5)
    assert _runs(api, tool) == []
    # enabled again, it fires (from now on)
    assert api.patch(f"/schedules/{schedule['id']}", json={"enabled": True}).json()["enabled"] is True
    _eventually(lambda: _runs(api, tool), what="a run once enabled")
    api.delete(f"/schedules/{schedule['id']}")


def test_invalid_schedules_are_refused(api: httpx.Client, unique: str) -> None:
    tool = f"bad-{unique}"
    deploy(api, tool, TOOL)
    for body, code in (({"cron": "61 * * * *"}, "invalid_cron"),
                       ({"cron": "0 0 31 2 *"}, "invalid_cron"),
                       ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "invalid_timezone"),
                       ({"interval_s": 0.2}, "interval_too_short"),
                       ({}, "invalid_schedule"),
                       ({"cron": "@daily", "interval_s": 60}, "invalid_schedule"),
                       ({"cron": "@daily", "inputs": {"n": "seven"}}, "invalid_inputs")):
        response = api.post("/schedules", json={"tool": tool, **body})
        assert response.status_code == 400 and error_code(response) == code, (body, response.text)
    response = api.post("/schedules", json={"tool": f"missing-{unique}", "cron": "@daily"})
    assert response.status_code == 400 and error_code(response) == "invalid_target", response.text
    response = api.post("/schedules", json={"workflow": f"missing-{unique}", "cron": "@daily"})
    assert response.status_code == 400 and error_code(response) == "invalid_target", response.text
    response = api.post("/schedules", json={"tool": tool, "workflow": tool, "cron": "@daily"})
    assert response.status_code == 400 and error_code(response) == "validation_error", response.text
    schedule = _schedule(api, tool=tool, cron="@daily")
    response = api.patch(f"/schedules/{schedule['id']}", json={"cron": "not a cron"})
    assert response.status_code == 400 and error_code(response) == "invalid_cron"
    assert api.get("/schedules/sch_missing").status_code == 404
    assert api.delete(f"/schedules/{schedule['id']}").status_code == 204
    assert error_code(api.get(f"/schedules/{schedule['id']}")) == "schedule_not_found"


def test_next_times(api: httpx.Client, unique: str) -> None:
    tool = f"next-{unique}"
    deploy(api, tool, TOOL)
    schedule = _schedule(api, tool=tool, cron="0 9 * * 1-5", timezone="Europe/Berlin")
    answer = api.get(f"/schedules/{schedule['id']}/next", params={"count": 5})
    assert answer.status_code == 200, answer.text
    times = [_ts(t) for t in answer.json()["times"]]
    assert len(times) == 5 and times == sorted(times)
    for t in times:
        local = t.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5
    assert api.get(f"/schedules/{schedule['id']}/next", params={"count": 0}).status_code == 400
    listed = api.get("/schedules", params={"limit": 1000}).json()["items"]
    assert schedule["id"] in {s["id"] for s in listed}
    api.delete(f"/schedules/{schedule['id']}")


@pytest.mark.slow
def test_deleting_the_tool_disables_the_schedule(api: httpx.Client, unique: str) -> None:
    tool = f"gone-{unique}"
    deploy(api, tool, TOOL)
    schedule = _schedule(api, tool=tool, interval_s=1)
    assert api.delete(f"/tools/{tool}").status_code == 204
    disabled = _eventually(lambda: (s := api.get(f"/schedules/{schedule['id']}").json())["enabled"] is False and s,
                           what="the schedule disabled")
    assert "no longer exists" in disabled["disabled_reason"], disabled


@pytest.mark.slow
def test_a_deleted_users_schedule_is_disabled_at_its_next_tick(api: httpx.Client, unique: str) -> None:
    tool = f"owner-{unique}"
    deploy(api, tool, TOOL, visibility="public")  # the admin's tool, run by another user's schedule
    username, password = f"sched-{unique}", "a-long-password-1"
    assert api.post("/users", json={"username": username, "role": "member", "password": password}).status_code == 201
    key = api.post("/auth/login", json={"username": username, "password": password}).json()["key"]
    with httpx.Client(base_url=str(api.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=30) as own:
        schedule = _schedule(own, tool=tool, interval_s=1)
        _eventually(lambda: _runs(api, tool), what="a run as the user")
        # a member sees only their own schedules; the admin sees every one
        assert [s["id"] for s in own.get("/schedules").json()["items"]] == [schedule["id"]]
    assert api.delete(f"/users/{username}").status_code == 204
    disabled = _eventually(lambda: (s := api.get(f"/schedules/{schedule['id']}").json())["enabled"] is False and s,
                           what="the schedule disabled")
    assert "owner" in disabled["disabled_reason"], disabled
    count = len(_runs(api, tool))
    time.sleep(2)
    assert len(_runs(api, tool)) == count

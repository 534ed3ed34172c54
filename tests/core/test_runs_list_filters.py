"""GET /runs filters on a real server: type, trigger, triggered_by, source, parent_run_id,
completion time, ids; sort by created/started/finished time and duration with cursors that
visit every run exactly once in any order; offset pages; bad values refused with 400."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import deploy, error_code, run, wait_status

SLEEPER = "def main(s: float = 0):\n    import time\n    time.sleep(s)\n    return s\n"
DURATIONS = (0.3, 0.0, 0.45, 0.15, 0.6, 0.05)


def _list(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/runs", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _ids(api: httpx.Client, **params: Any) -> list[str]:
    return [r["id"] for r in _list(api, **params)]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _duration(r: dict[str, Any]) -> float | None:
    if r["started_at"] is None or r["finished_at"] is None:
        return None
    return (_ts(r["finished_at"]) - _ts(r["started_at"])).total_seconds()


def _pages(api: httpx.Client, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every run the filters match, page by page through next_cursor."""
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        response = api.get("/runs", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


def _eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def sleeper_runs(api: httpx.Client, unique: str) -> tuple[str, list[dict[str, Any]]]:
    """A tool with six finished runs of distinct durations, one cancelled before it started
    (finished, no duration) and one awaiting confirmation (neither)."""
    tool = f"sleeper-{unique}"
    deploy(api, tool, SLEEPER)
    for s in DURATIONS:
        assert run(api, tool, {"s": s})["status"] == "succeeded"
    held = api.post("/runs", json={"tool": tool, "inputs": {"s": 0}, "requires_confirmation": True}).json()
    assert api.post(f"/runs/{held['id']}/cancel").json()["status"] == "cancelled"
    waiting = api.post("/runs", json={"tool": tool, "inputs": {"s": 0}, "requires_confirmation": True}).json()
    assert waiting["status"] == "awaiting_confirmation"
    return tool, _list(api, source=tool)


def test_every_run_records_type_trigger_and_triggered_by(api: httpx.Client, unique: str) -> None:
    tool = f"who-{unique}"
    deploy(api, tool, SLEEPER)
    me = api.get("/me").json()["id"]
    plain = run(api, tool)
    cli = api.post("/runs", params={"wait": 10}, json={"tool": tool}, headers={"X-Runyard-Trigger": "cli"}).json()
    sdk = api.post("/runs", params={"wait": 10}, json={"tool": tool},
                   headers={"User-Agent": "runyard-python/0.1.0"}).json()
    multipart = api.post("/runs", files={"payload": (None, json.dumps({"tool": tool}))},
                         headers={"X-Runyard-Trigger": "sdk"}).json()
    rerun = api.post(f"/runs/{plain['id']}/rerun").json()
    made = {plain["id"]: "api", cli["id"]: "cli", sdk["id"]: "sdk", multipart["id"]: "sdk", rerun["id"]: "rerun"}
    listed = {r["id"]: r for r in _list(api, source=tool)}
    assert set(listed) == set(made)
    for run_id, trigger in made.items():
        r = listed[run_id]
        assert (r["type"], r["trigger"], r["triggered_by"]) == ("tool", trigger, me), r
    assert api.get(f"/runs/{rerun['id']}").json()["triggered_by"] == me
    # the filters
    assert set(_ids(api, source=tool, trigger="cli")) == {cli["id"]}
    assert set(_ids(api, source=tool, trigger="sdk,cli")) == {cli["id"], sdk["id"], multipart["id"]}
    assert set(_ids(api, source=tool, trigger=["api", "rerun"])) == {plain["id"], rerun["id"]}
    assert set(_ids(api, source=tool, triggered_by=me)) == set(made)
    assert _ids(api, source=tool, triggered_by="usr_nobody") == []
    assert set(_ids(api, source=tool, type="tool")) == set(made)
    assert _ids(api, source=tool, type="workflow") == []
    assert _ids(api, parent_run_id=plain["id"]) == [rerun["id"]]
    assert _ids(api, source=f"other-{unique}") == []
    # source is the tool's name (tool= takes its id too)
    assert set(_ids(api, tool=plain["tool_id"])) == set(made)


def test_a_client_claims_only_api_cli_sdk_or_mcp(api: httpx.Client, unique: str) -> None:
    """``mcp`` is what ``runyard mcp`` (the stdio MCP server, a client of the API) claims."""
    tool = f"claim-{unique}"
    deploy(api, tool, SLEEPER)
    for value in ("schedule", "webhook", "email", "rerun", "workflow", "ui", "bogus"):
        for response in (
            api.post("/runs", json={"tool": tool}, headers={"X-Runyard-Trigger": value}),
            api.post("/runs", files={"payload": (None, json.dumps({"tool": tool}))},
                     headers={"X-Runyard-Trigger": value}),
        ):
            assert response.status_code == 400 and error_code(response) == "validation_error", (value, response.text)
            assert response.json()["error"]["details"]["field"] == "trigger"
    assert _list(api, source=tool) == []
    claimed = api.post("/runs", json={"tool": tool}, headers={"X-Runyard-Trigger": "mcp"})
    assert claimed.status_code == 201 and claimed.json()["trigger"] == "mcp", claimed.text


def test_ids_and_completion_time(api: httpx.Client, sleeper_runs: tuple[str, list[dict[str, Any]]]) -> None:
    tool, runs = sleeper_runs
    finished = sorted((r for r in runs if r["finished_at"]), key=lambda r: r["finished_at"])
    assert len(finished) == len(DURATIONS) + 1
    picked = [runs[0]["id"], runs[3]["id"], runs[-1]["id"]]
    assert set(_ids(api, ids=",".join(picked))) == set(picked)
    assert set(_ids(api, ids=f" {picked[0]} ,,{picked[1]},run_missing")) == set(picked[:2])
    assert _ids(api, ids="") == []
    pivot = _ts(finished[2]["finished_at"])
    after = _ids(api, source=tool, completed_after=pivot.isoformat())
    before = _ids(api, source=tool, completed_before=pivot.isoformat())
    assert set(after) == {r["id"] for r in finished[3:]}
    assert set(before) == {r["id"] for r in finished[:2]}
    window = _ids(api, source=tool, completed_after=(pivot - timedelta(microseconds=1)).isoformat(),
                  completed_before=(pivot + timedelta(microseconds=1)).isoformat())
    assert window == [finished[2]["id"]]
    # combined with the other filters: every one must hold
    assert _ids(api, source=tool, status="awaiting_confirmation", completed_after=pivot.isoformat()) == []


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_sort_by_duration_pages_every_run_once(api: httpx.Client, order: str,
                                               sleeper_runs: tuple[str, list[dict[str, Any]]]) -> None:
    tool, runs = sleeper_runs
    for limit in (1, 2, 3):
        seen = _pages(api, limit, source=tool, sort="duration", order=order)
        assert sorted(r["id"] for r in seen) == sorted(r["id"] for r in runs)
        durations = [_duration(r) for r in seen]
        timed = [d for d in durations if d is not None]
        assert len(timed) == len(DURATIONS)
        assert durations[len(timed):] == [None, None], "runs without a duration come last"
        ordered = sorted(timed, reverse=order == "desc")
        assert all(abs(a - b) < 0.005 for a, b in zip(timed, ordered, strict=True)), (timed, ordered)
    longest = _list(api, source=tool, sort="duration", limit=1)[0]
    assert longest["output"] == max(DURATIONS)


@pytest.mark.parametrize("sort", ["created_at", "started_at", "finished_at"])
def test_sort_by_times_pages_every_run_once(api: httpx.Client, sort: str,
                                            sleeper_runs: tuple[str, list[dict[str, Any]]]) -> None:
    tool, runs = sleeper_runs
    for order in ("asc", "desc"):
        seen = _pages(api, 2, source=tool, sort=sort, order=order)
        assert sorted(r["id"] for r in seen) == sorted(r["id"] for r in runs)
        values = [r[sort] for r in seen]
        present = [_ts(v) for v in values if v is not None]
        assert values[len(present):] == [None] * (len(values) - len(present)), "missing values come last"
        assert present == sorted(present, reverse=order == "desc"), (sort, order, values)
    if sort == "created_at":  # the default order: newest first
        assert [r["id"] for r in _pages(api, 3, source=tool)] == [r["id"] for r in _pages(api, 3, source=tool,
                                                                                          sort=sort, order="desc")]


def test_offset_pages(api: httpx.Client, sleeper_runs: tuple[str, list[dict[str, Any]]]) -> None:
    tool, runs = sleeper_runs
    everything = _ids(api, source=tool, sort="duration", order="desc")
    assert len(everything) == len(runs)
    collected: list[str] = []
    for offset in range(0, len(everything), 3):
        response = api.get("/runs", params={"source": tool, "sort": "duration", "order": "desc", "limit": 3,
                                            "offset": offset, "include_total": True})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(runs)
        collected.extend(r["id"] for r in body["items"])
    assert collected == everything
    # a page found by offset continues by its cursor
    first = api.get("/runs", params={"source": tool, "offset": 2, "limit": 2}).json()
    rest = api.get("/runs", params={"source": tool, "cursor": first["next_cursor"], "limit": 1000}).json()
    newest_first = _ids(api, source=tool)
    assert [r["id"] for r in first["items"]] + [r["id"] for r in rest["items"]] == newest_first[2:]
    assert _ids(api, source=tool, offset=len(runs)) == []
    both = api.get("/runs", params={"source": tool, "offset": 1, "cursor": first["next_cursor"]})
    assert both.status_code == 400 and error_code(both) == "validation_error"
    assert both.json()["error"]["details"]["field"] == "offset"


def test_runs_of_a_schedule_and_a_webhook(api: httpx.Client, unique: str) -> None:
    tool = f"trig-{unique}"
    deploy(api, tool, SLEEPER)
    me = api.get("/me").json()["id"]
    mine = run(api, tool)
    created = api.post("/schedules", json={"tool": tool, "interval_s": 1})
    assert created.status_code == 201, created.text
    schedule = created.json()
    try:
        scheduled = _eventually(lambda: _list(api, source=tool, trigger="schedule"), what="a scheduled run")
    finally:
        api.patch(f"/schedules/{schedule['id']}", json={"enabled": False})
    hook = api.post("/webhooks", json={"tool": tool})
    assert hook.status_code == 201, hook.text
    delivered = httpx.post(hook.json()["url"], json={}, timeout=30)
    assert delivered.status_code == 202, delivered.text
    hooked = delivered.json()["run_id"]
    wait_status(api, hooked, {"succeeded"})
    assert {r["triggered_by"] for r in scheduled} == {schedule["id"]}
    assert all(r["trigger"] == "schedule" and r["type"] == "tool" for r in scheduled)
    from_schedule = _ids(api, triggered_by=schedule["id"])
    assert from_schedule and set(from_schedule) == set(_ids(api, source=tool, trigger="schedule"))
    assert mine["id"] not in from_schedule and hooked not in from_schedule
    assert _ids(api, triggered_by=hook.json()["id"]) == [hooked]
    assert api.get(f"/runs/{hooked}").json()["trigger"] == "webhook"
    assert _ids(api, source=tool, triggered_by=me) == [mine["id"]]
    assert set(_ids(api, source=tool, trigger="schedule,webhook")) == set(from_schedule) | {hooked}


@pytest.mark.parametrize(("params", "field"), [
    ({"sort": "name"}, "sort"), ({"sort": "duration", "order": "up"}, "order"), ({"type": "job"}, "type"),
    ({"trigger": "telepathy"}, "trigger"), ({"trigger": "api,nope"}, "trigger"),
    ({"offset": -1}, "offset"), ({"offset": 10**12}, "offset"), ({"offset": "x"}, None),
    ({"completed_after": "yesterday"}, "completed_after"), ({"completed_before": "2026-13-01"}, "completed_before"),
    ({"limit": 1001}, "limit"), ({"limit": 0}, "limit"),
    ({"ids": ",".join(f"run_{i}" for i in range(1001))}, "ids"),
])
def test_bad_values_are_refused(api: httpx.Client, params: dict[str, Any], field: str | None) -> None:
    response = api.get("/runs", params=params)
    assert response.status_code == 400, response.text
    if field is not None:
        assert response.json()["error"]["details"].get("field") == field, response.text


def test_a_cursor_of_another_sort_is_refused(api: httpx.Client,
                                             sleeper_runs: tuple[str, list[dict[str, Any]]]) -> None:
    tool, _ = sleeper_runs
    by_created = api.get("/runs", params={"source": tool, "limit": 1}).json()["next_cursor"]
    by_duration = api.get("/runs", params={"source": tool, "limit": 1, "sort": "duration"}).json()["next_cursor"]
    for sort, cursor in (("duration", by_created), ("started_at", by_duration), ("finished_at", by_created)):
        response = api.get("/runs", params={"source": tool, "sort": sort, "cursor": cursor})
        assert response.status_code == 400 and error_code(response) == "invalid_cursor", (sort, response.text)

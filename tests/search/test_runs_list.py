"""GET /runs's richer filters on a real server: project, app, source_ref, worker_id, several
tools, example_id_contains; numbered pages beside cursors (never mixed); sort by any listed
column with cursors visiting every run once in either order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import deploy, error_code, run

ECHO = "def main(n: int = 0):\n    return n\n"


def _list(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/runs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(api: httpx.Client, **params: Any) -> list[str]:
    return [r["id"] for r in _list(api, limit=1000, **params)["items"]]


@pytest.fixture
def tagged(api: httpx.Client, unique: str) -> dict[str, Any]:
    tools = [f"lst-a-{unique}", f"lst-b-{unique}", f"lst-c-{unique}"]
    for tool in tools:
        deploy(api, tool, ECHO)
    made = []
    for i in range(7):
        tags = {"session": f"ls-{unique}", "example_id": f"case-{i % 3}-{unique}", "source_ref": f"pr-{i % 2}"}
        if i % 3 != 2:
            tags["project"] = f"proj{i % 3}-{unique}"
            tags["app"] = "web" if i % 2 else "batch"
        made.append(run(api, tools[i % 3], {"n": i}, tags=tags))
    assert all(r["status"] == "succeeded" for r in made)
    return {"tools": tools, "runs": made, "ids": [r["id"] for r in made], "u": unique}


def test_new_filters(api: httpx.Client, tagged: dict[str, Any]) -> None:
    ids, u, tools = tagged["ids"], tagged["u"], tagged["tools"]
    session = {"session": f"ls-{u}"}
    assert set(_ids(api, project=f"proj0-{u}")) == {ids[0], ids[3], ids[6]}
    assert set(_ids(api, app="web", **session)) == {ids[1], ids[3]}
    assert set(_ids(api, source_ref="pr-1", **session)) == {ids[1], ids[3], ids[5]}
    assert set(_ids(api, tool=[tools[0], tools[1]])) == {ids[0], ids[1], ids[3], ids[4], ids[6]}
    assert set(_ids(api, tool=f"{tools[1]},{tools[2]}")) == {ids[1], ids[2], ids[4], ids[5]}
    tool_id = tagged["runs"][2]["tool_id"]
    assert set(_ids(api, tool=[tool_id, tools[1]])) == {ids[1], ids[2], ids[4], ids[5]}
    assert set(_ids(api, tool=tools[0])) == {ids[0], ids[3], ids[6]}  # one tool, as before
    assert set(_ids(api, example_id_contains=f"-1-{u}")) == {ids[1], ids[4]}
    assert _ids(api, example_id_contains=f"CASE-1-{u}") == []  # case-sensitive
    assert _ids(api, example_id_contains="%", **session) == []  # a wildcard is a plain character
    worker = tagged["runs"][0]["worker_id"]
    assert worker and ids[0] in _ids(api, worker_id=worker, **session)
    assert _ids(api, worker_id="wrk_nobody", **session) == []
    shown = _list(api, project=f"proj1-{u}")["items"][0]  # the newest: run 4
    assert (shown["id"], shown["tags"]["project"], shown["tags"]["source_ref"]) == (ids[4], f"proj1-{u}", "pr-0")


def test_numbered_pages(api: httpx.Client, tagged: dict[str, Any]) -> None:
    ids, u = tagged["ids"], tagged["u"]
    seen: list[str] = []
    for page in (1, 2, 3):
        body = _list(api, session=f"ls-{u}", page=page, page_size=3, include_total=True)
        assert body["total"] == 7
        seen.extend(r["id"] for r in body["items"])
    assert seen == ids[::-1]
    assert _list(api, session=f"ls-{u}", page=4, page_size=3)["items"] == []
    assert len(_list(api, session=f"ls-{u}", page=1)["items"]) == 7  # page_size 50 by default
    for params in ({"page": 1, "limit": 5}, {"page": 1, "offset": 0}, {"page_size": 5, "cursor": "x"},
                   {"page_size": 1001}, {"page_size": 0}, {"page": 0}, {"page": 10**9, "page_size": 1000}):
        response = api.get("/runs", params=params)
        assert response.status_code == 400, (params, response.text)
        assert error_code(response) in ("validation_error", "invalid_limit"), response.text


@pytest.mark.parametrize("sort", ["tool_name", "project", "example_id", "source_ref", "status", "attempt",
                                  "queued_at", "app"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_listed_columns_pages_every_run_once(api: httpx.Client, tagged: dict[str, Any], sort: str,
                                                      order: str) -> None:
    ids, u = tagged["ids"], tagged["u"]
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(20):
        body = _list(api, session=f"ls-{u}", sort=sort, order=order, limit=2, **({"cursor": cursor} if cursor else {}))
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(r["id"] for r in seen) == sorted(ids)

    def key(r: dict[str, Any]) -> Any:
        return r["tags"].get(sort) if sort in ("project", "example_id", "source_ref", "app") else r[sort]

    valued = [key(r) for r in seen if key(r) is not None]
    assert valued == sorted(valued, reverse=order == "desc")
    assert all(key(r) is None for r in seen[len(valued):])  # runs without one come last


def test_unknown_sort_is_refused(api: httpx.Client) -> None:
    response = api.get("/runs", params={"sort": "inputs"})
    assert response.status_code == 400 and "tool_name" in response.text

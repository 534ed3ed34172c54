"""POST /runs/search on a real server: every op on columns and nested values (tags, inputs,
usage), select, order, limit/offset pages, totals; workspace and restricted-key scoping;
unknown fields, ops and bad values refused with 400 naming what is allowed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import deploy, error_code, run

ECHO = "def main(n: int = 0, word: str = '', flag: bool = False, meta: dict | None = None):\n    return n\n"


def _search(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/runs/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _ids(api: httpx.Client, *props: tuple[str, str, Any], **body: Any) -> set[str]:
    found = _search(api, props=[{"field": f, "op": o, "value": v} for f, o, v in props], limit=1000, **body)
    return {item["id"] for item in found["items"]}


@pytest.fixture
def runs_made(api: httpx.Client, unique: str) -> dict[str, Any]:
    """Five runs of one tool, with distinct inputs and tags, and one of a second tool."""
    tool, other = f"srch-{unique}", f"srch2-{unique}"
    deploy(api, tool, ECHO)
    deploy(api, other, ECHO)
    made = []
    for i, (word, project, app) in enumerate([("alpha", "p1", "web"), ("beta", "p1", "cli"), ("alphabet", "p2", "web"),
                                              ("Alpha", None, None), ("a*b?[c]%_", "p2", "web")]):
        tags = {"session": f"s-{unique}", "example_id": f"ex-{unique}-{i:03d}", "source_ref": f"git:{unique}:{i}"}
        if project:
            tags["project"] = f"{project}-{unique}"
        if app:
            tags["app"] = app
        made.append(run(api, tool, {"n": i, "word": word, "flag": i % 2 == 0, "meta": {"k": i * 10, "name": word}},
                        tags=tags))
    made.append(run(api, other, {"n": 100, "word": "alpha"}, tags={"session": f"s-{unique}"}))
    assert all(r["status"] == "succeeded" for r in made), made
    return {"tool": tool, "other": other, "runs": made, "ids": [r["id"] for r in made], "u": unique}


def test_equality_in_and_tag_columns(api: httpx.Client, runs_made: dict[str, Any]) -> None:
    ids, u, tool = runs_made["ids"], runs_made["u"], runs_made["tool"]
    assert _ids(api, ("tool_name", "eq", tool)) == set(ids[:5])
    assert _ids(api, ("tool_name", "in", [tool, runs_made["other"]])) == set(ids)
    assert _ids(api, ("project", "eq", f"p1-{u}")) == set(ids[:2])
    assert _ids(api, ("tags.project", "eq", f"p2-{u}")) == {ids[2], ids[4]}
    assert _ids(api, ("app", "eq", "web"), ("session", "eq", f"s-{u}")) == {ids[0], ids[2], ids[4]}
    assert _ids(api, ("session", "eq", f"s-{u}"), ("project", "exists", False)) == {ids[3], ids[5]}
    assert _ids(api, ("session", "eq", f"s-{u}"), ("project", "nin", [f"p1-{u}"])) == {ids[2], ids[3], ids[4], ids[5]}
    assert _ids(api, ("session", "eq", f"s-{u}"), ("project", "neq", f"p2-{u}")) == {ids[0], ids[1], ids[3], ids[5]}
    assert _ids(api, ("source_ref", "eq", f"git:{u}:3")) == {ids[3]}
    assert _ids(api, ("id", "in", ids[:2])) == set(ids[:2])
    assert _ids(api, ("status", "eq", "succeeded"), ("session", "eq", f"s-{u}")) == set(ids)
    assert _ids(api, ("status", "eq", "failed"), ("session", "eq", f"s-{u}")) == set()


def test_text_contains_and_startswith_are_case_sensitive_and_literal(api: httpx.Client,
                                                                     runs_made: dict[str, Any]) -> None:
    ids, u = runs_made["ids"], runs_made["u"]
    session = ("session", "eq", f"s-{u}")
    assert _ids(api, ("example_id", "contains", f"{u}-00")) == set(ids[:5])
    assert _ids(api, ("example_id", "startswith", f"ex-{u}-004")) == {ids[4]}
    assert _ids(api, ("tool_name", "startswith", "srch2-"), session) == {ids[5]}
    assert _ids(api, ("inputs.word", "contains", "lpha"), session) == {ids[0], ids[2], ids[3], ids[5]}
    assert _ids(api, ("inputs.word", "startswith", "alpha"), session) == {ids[0], ids[2], ids[5]}
    assert _ids(api, ("inputs.word", "startswith", "Alpha"), session) == {ids[3]}
    # wildcards of either database are plain characters
    for text in ("*", "?", "[c]", "%", "_", "a*b?[c]%_"):
        assert _ids(api, ("inputs.word", "contains", text), session) == {ids[4]}, text
    assert _ids(api, ("inputs.meta.name", "contains", "bet"), session) == {ids[1], ids[2]}


def test_nested_values_compare_by_type(api: httpx.Client, runs_made: dict[str, Any]) -> None:
    ids, u = runs_made["ids"], runs_made["u"]
    session = ("session", "eq", f"s-{u}")
    assert _ids(api, ("inputs.n", "eq", 2), session) == {ids[2]}
    assert _ids(api, ("inputs.n", "eq", "2"), session) == set()  # a string is not the number
    assert _ids(api, ("inputs.n", "gte", 3), session) == {ids[3], ids[4], ids[5]}
    assert _ids(api, ("inputs.n", "lt", 1.5), session) == {ids[0], ids[1]}
    assert _ids(api, ("inputs.n", "in", [1, 4, 100]), session) == {ids[1], ids[4], ids[5]}
    assert _ids(api, ("inputs.n", "nin", [1, 4]), session) == {ids[0], ids[2], ids[3], ids[5]}
    assert _ids(api, ("inputs.n", "neq", 0), session) == set(ids[1:])
    assert _ids(api, ("inputs.flag", "eq", True), session) == {ids[0], ids[2], ids[4]}
    assert _ids(api, ("inputs.flag", "eq", False), session) == {ids[1], ids[3]}  # ids[5] has none
    assert _ids(api, ("inputs.meta.k", "gt", 15), session) == {ids[2], ids[3], ids[4]}
    assert _ids(api, ("inputs.meta", "exists", True), session) == set(ids[:5])
    assert _ids(api, ("inputs.meta.k", "exists", False), session) == {ids[5]}
    assert _ids(api, ("inputs.word", "gt", "beta"), session) == set()  # "alpha…", "Alpha", "a*…" sort before
    assert _ids(api, ("inputs.word", "gte", "beta"), session) == {ids[1]}
    assert _ids(api, ("usage.wall_ms", "gte", 0), session) == set(ids)
    assert _ids(api, ("usage.wall_ms", "lt", 0), session) == set()


def test_times_order_select_pages_and_total(api: httpx.Client, runs_made: dict[str, Any]) -> None:
    ids, u = runs_made["ids"], runs_made["u"]
    session = {"field": "session", "op": "eq", "value": f"s-{u}"}
    first = runs_made["runs"][0]["created_at"]
    assert _ids(api, ("session", "eq", f"s-{u}"), ("created_at", "gt", first)) == set(ids[1:])
    assert _ids(api, ("session", "eq", f"s-{u}"), ("finished_at", "exists", True)) == set(ids)
    newest = _search(api, props=[session])
    assert [r["id"] for r in newest["items"]] == ids[::-1]
    assert newest["total"] is None and newest["next_offset"] is None
    oldest = _search(api, props=[session], order="created_at asc", select=["id", "tool_name", "tags", "inputs"])
    assert [r["id"] for r in oldest["items"]] == ids
    assert set(oldest["items"][0]) == {"id", "tool_name", "tags", "inputs"}
    assert oldest["items"][0]["inputs"]["word"] == "alpha"
    assert oldest["items"][0]["tags"]["app"] == "web"
    by_project = _search(api, props=[session], order="project asc, created_at desc", select=["id", "project"])
    assert [r["id"] for r in by_project["items"]] == [ids[1], ids[0], ids[4], ids[2], ids[5], ids[3]]
    pages: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = _search(api, props=[session], limit=4, offset=offset, with_total_count=True, select=["id"])
        assert page["total"] == 6
        pages.extend(r["id"] for r in page["items"])
        offset = page["next_offset"]
    assert pages == ids[::-1]
    full = _search(api, props=[{"field": "id", "op": "eq", "value": ids[0]}])["items"][0]
    assert full["status"] == "succeeded" and full["project"] == f"p1-{u}" and full["app"] == "web"
    assert full["created_at"].endswith("Z") and full["usage"]["wall_ms"] >= 0 and full["output"] == 0


@pytest.mark.parametrize(("body", "code", "named"), [
    ({"props": [{"field": "nope", "op": "eq", "value": 1}]}, "unknown_search_field", "status"),
    ({"props": [{"field": "tags.color", "op": "eq", "value": "x"}]}, "unknown_search_field", "tags.project"),
    ({"props": [{"field": "inputs.a'b", "op": "eq", "value": 1}]}, "unknown_search_field", "inputs.<name>"),
    ({"props": [{"field": "inputs.a.b.c.d.e.f", "op": "eq", "value": 1}]}, "unknown_search_field", "inputs"),
    ({"props": [{"field": "status", "op": "like", "value": "x"}]}, "unknown_search_op", "startswith"),
    ({"props": [{"field": "status", "op": "in", "value": "x"}]}, "invalid_search_value", "list"),
    ({"props": [{"field": "status", "op": "in", "value": []}]}, "invalid_search_value", "list"),
    ({"props": [{"field": "attempt", "op": "gt", "value": "x"}]}, "invalid_search_value", "number"),
    ({"props": [{"field": "attempt", "op": "contains", "value": "1"}]}, "invalid_search_value", "text"),
    ({"props": [{"field": "created_at", "op": "gt", "value": "yesterday"}]}, "invalid_search_value", "RFC 3339"),
    ({"props": [{"field": "inputs.x", "op": "eq", "value": {"a": 1}}]}, "invalid_search_value", "exists"),
    ({"props": [{"field": "inputs.x", "op": "contains", "value": ""}]}, "invalid_search_value", "non-empty"),
    ({"props": [{"field": "inputs.x", "op": "exists", "value": "yes"}]}, "invalid_search_value", "true or false"),
    ({"select": ["id", "secret"]}, "unknown_search_field", "tool_name"),
    ({"order": "inputs.n desc"}, "invalid_search_order", "created_at"),
    ({"order": "created_at sideways"}, "invalid_search_order", "created_at"),
    ({"limit": 1001}, "validation_error", "limit"),
    ({"offset": -1}, "validation_error", "offset"),
    ({"props": [{"field": "status", "op": "eq"}], "extra": 1}, "validation_error", "extra"),
])
def test_bad_searches_are_refused_naming_what_is_allowed(api: httpx.Client, body: dict[str, Any], code: str,
                                                          named: str) -> None:
    response = api.post("/runs/search", json=body)
    assert response.status_code == 400, response.text
    assert error_code(response) == code, response.text
    assert named in response.text


def test_injection_through_values_and_paths_finds_nothing(api: httpx.Client, runs_made: dict[str, Any]) -> None:
    u = runs_made["u"]
    session = ("session", "eq", f"s-{u}")
    for value in ("' OR 1=1 --", '") OR 1=1 --', "%", "x' UNION SELECT * FROM tokens --"):
        assert _ids(api, ("tool_name", "eq", value)) == set()
        assert _ids(api, ("inputs.word", "eq", value), session) == set()
    response = api.post("/runs/search", json={"props": [{"field": 'inputs.x") OR 1=1 --', "op": "exists"}]})
    assert error_code(response) == "unknown_search_field"

"""A substring search on a sparse tag column (example_id, session, project, source_ref, …),
in-process on SQLite and PostgreSQL: the right runs, newest first, page after page, only the
principal's workspace's; on SQLite the query scans the column's partial index (bounded by
the runs that have the tag) instead of walking every run of the workspace in time order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runyard.schemas.run_search import RunSearchRequest
from runyard.services.access import Principal
from runyard.services.run_search import RunSearchService
from runyard.services.runs import new_run_row
from runyard.store.db import Database
from runyard.store.migrate import upgrade
from runyard.store.tables import runs
from tests.support.servers import PgDatabase

T0 = datetime(2030, 1, 1, tzinfo=UTC)
RUNS = 3000
VIEWER = Principal(token_id="tok_a", workspace_id="ws_a", role="viewer")


@pytest.fixture
def db(backend: str, tmp_path: Path) -> Iterator[Database]:
    pg = PgDatabase.create() if backend == "postgres" else None
    database = Database(pg.url if pg else f"sqlite:///{tmp_path / 'runyard.db'}")
    upgrade(database.engine)
    try:
        yield database
    finally:
        database.dispose()
        if pg:
            pg.drop()


@pytest.fixture
def seeded(db: Database) -> list[dict[str, Any]]:
    """RUNS runs of ws_a, one in ten with an example id (``ex-<n>`` and, every third, a
    ``*[x]%_`` that the databases' wildcards must not read as a pattern), plus ws_b's runs
    whose example ids match the same searches; ANALYZEd, so the planners see a sparse column."""
    rows = []
    for i in range(RUNS):
        tags: dict[str, str] = {}
        if i % 10 == 0:
            tags["example_id"] = f"ex-{i // 10:04d}" + ("*[x]%_" if i % 30 == 0 else "")
        rows.append(_run("ws_a", i, tags))
    rows += [_run("ws_b", RUNS + i, {"example_id": f"ex-{i:04d}*[x]%_"}) for i in range(0, 300, 7)]
    with db.write() as conn:
        for start in range(0, len(rows), 500):
            conn.execute(runs.insert(), rows[start:start + 500])
        conn.execute(sa.text("ANALYZE"))
    return rows


def _run(ws: str, i: int, tags: dict[str, str]) -> dict[str, Any]:
    return new_run_row(id=f"run_{ws}_{i:06d}", workspace_id=ws, tool_id="tool_t", tool_name="t", tool_version=1,
                       tool_version_id="tv_t", status="succeeded", inputs={}, tags=tags,
                       created_at=T0 + timedelta(minutes=i))


class _Platform:
    def __init__(self, db: Database) -> None:
        self.db = db


def _search(db: Database, **body: Any) -> dict[str, Any]:
    return RunSearchService(_Platform(db)).search(VIEWER, RunSearchRequest.model_validate(body))


def _expected(rows: list[dict[str, Any]], match: Any, since: datetime | None = None) -> list[str]:
    """ws_a's runs whose example id ``match``es (after ``since``), newest first."""
    found = [r for r in rows if r["workspace_id"] == "ws_a" and r["example_id"] is not None
             and match(r["example_id"]) and (since is None or r["created_at"] >= since)]
    return [r["id"] for r in sorted(found, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


def _pages(db: Database, props: list[dict[str, Any]], limit: int) -> tuple[list[str], int | None]:
    ids: list[str] = []
    offset: int | None = 0
    total = None
    while offset is not None:
        page = _search(db, props=props, limit=limit, offset=offset, select=["id"], with_total_count=True)
        ids += [item["id"] for item in page["items"]]
        offset, total = page["next_offset"], page["total"]
    return ids, total


@pytest.mark.parametrize(("text", "limit"), [("02", 7), ("ex-", 50), ("*[x]%_", 13), ("0150", 5), ("nowhere", 10)])
def test_contains_on_a_tag_column_finds_its_workspaces_runs_newest_first(
        db: Database, seeded: list[dict[str, Any]], text: str, limit: int) -> None:
    want = _expected(seeded, lambda value: text in value)
    got, total = _pages(db, [{"field": "example_id", "op": "contains", "value": text}], limit)
    assert got == want and total == len(want)
    since = T0 + timedelta(minutes=RUNS // 2)
    within = _search(db, props=[{"field": "tags.example_id", "op": "contains", "value": text},
                                {"field": "created_at", "op": "gte", "value": since.isoformat()}],
                     limit=1000, select=["id"])
    assert [item["id"] for item in within["items"]] == _expected(seeded, lambda value: text in value, since)


def test_contains_is_case_sensitive_and_other_ops_still_match(db: Database, seeded: list[dict[str, Any]]) -> None:
    assert _pages(db, [{"field": "example_id", "op": "contains", "value": "EX-"}], 50) == ([], 0)
    got, _ = _pages(db, [{"field": "example_id", "op": "startswith", "value": "ex-01"}], 40)
    assert got == _expected(seeded, lambda value: value.startswith("ex-01"))
    got, _ = _pages(db, [{"field": "example_id", "op": "contains", "value": "1"},
                         {"field": "example_id", "op": "contains", "value": "[x]"}], 30)
    assert got == _expected(seeded, lambda value: "1" in value and "[x]" in value)


def test_sqlite_answers_contains_from_the_partial_index(backend: str, db: Database,
                                                        seeded: list[dict[str, Any]]) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's planner")
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM runs" in statement:
            statements.append((statement, parameters))  # the search (not the visibility check's read of tools)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        for props in ([{"field": "example_id", "op": "contains", "value": "0150"}],
                      [{"field": "example_id", "op": "contains", "value": "0150"},
                       {"field": "created_at", "op": "gte", "value": (T0 + timedelta(days=1)).isoformat()}]):
            statements.clear()
            _search(db, props=props, limit=50)
            (statement, parameters), = statements
            with db.read() as conn:
                plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                          parameters))
            assert re.search(r"USING INDEX ix_runs_ws_example_id_created \(workspace_id=\? AND example_id>\?\)",
                             plan), plan
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)

"""The search service in-process, on SQLite and PostgreSQL: a principal finds only its
workspace's runs, a restricted key only its tools' (totals included), whatever the props
ask; migration 0019 gives runs made before it their project, app and source_ref columns;
the benchmark script runs (small N) and reports every search it lists."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from runyard.ids import new_id
from runyard.schemas.run_search import RunSearchRequest
from runyard.services.access import Principal
from runyard.services.run_search import RunSearchService
from runyard.services.runs import new_run_row
from runyard.store.db import Database
from runyard.store.migrate import alembic_config, upgrade
from runyard.store.tables import runs
from tests.support.servers import PG_URL, PgDatabase

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgres":
        pg = PgDatabase.create()
        try:
            yield pg.url
        finally:
            pg.drop()
    else:
        yield f"sqlite:///{tmp_path / 'runyard.db'}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def _run(ws: str, tool: str, i: int, **tags: str) -> dict[str, Any]:
    return new_run_row(id=new_id("run"), workspace_id=ws, tool_id=f"tool_{tool}", tool_name=tool, tool_version=1,
                       tool_version_id=f"tv_{tool}", status="succeeded", inputs={"i": i}, tags=tags,
                       created_at=T0 + timedelta(minutes=i))


class _Platform:
    def __init__(self, db: Database) -> None:
        self.db = db


def _search(db: Database, who: Principal, **body: Any) -> dict[str, Any]:
    return RunSearchService(_Platform(db)).search(who, RunSearchRequest.model_validate(body))


def test_a_principal_finds_only_its_workspace_and_tools(db: Database) -> None:
    rows = [_run("ws_a", "alpha", 0, project="p"), _run("ws_a", "beta", 1, project="p"),
            _run("ws_a", "alpha", 2), _run("ws_b", "alpha", 3, project="p"), _run("ws_b", "gamma", 4, project="p")]
    with db.write() as conn:
        conn.execute(runs.insert(), rows)
    ids = [r["id"] for r in rows]
    a = Principal(token_id="tok_a", workspace_id="ws_a", role="viewer")
    restricted = Principal(token_id="tok_r", workspace_id="ws_a", role="member", tools=frozenset({"tool_alpha"}))
    every = {"field": "id", "op": "in", "value": ids}
    found = _search(db, a, props=[every], with_total_count=True)
    assert {r["id"] for r in found["items"]} == set(ids[:3]) and found["total"] == 3
    found = _search(db, restricted, props=[every], with_total_count=True)
    assert {r["id"] for r in found["items"]} == {ids[0], ids[2]} and found["total"] == 2
    assert _search(db, restricted, props=[{"field": "tool_name", "op": "eq", "value": "beta"}])["items"] == []
    assert _search(db, a, props=[{"field": "tool_name", "op": "eq", "value": "gamma"}])["items"] == []
    projects = _search(db, a, props=[{"field": "project", "op": "eq", "value": "p"}], select=["id"])
    assert [r["id"] for r in projects["items"]] == [ids[1], ids[0]]


def test_migration_0019_fills_the_new_columns_from_tags(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0018_evaluation")
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO runs (id, workspace_id, tool_id, tool_name, tool_version, tool_version_id, status, "
                "inputs, input_files, tags, type, trigger, attempt, max_attempts, cancel_requested, "
                "requires_confirmation, log_bytes, log_truncated, created_at) VALUES ('run_old', 'ws', 'tool_x', "
                "'x', 1, 'tv_x', 'succeeded', '{}', '{}', :tags, 'tool', 'api', 1, 1, false, false, 0, false, "
                ":at)"), {"tags": json.dumps({"project": "p1", "app": "web", "source_ref": "git:1"}), "at": T0})
        upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(sa.select(runs.c.project, runs.c.app, runs.c.source_ref)
                               .where(runs.c.id == "run_old")).one()
        assert tuple(row) == ("p1", "web", "git:1")
    finally:
        engine.dispose()


def test_the_benchmark_runs_and_reports_every_search(backend: str) -> None:
    args = [sys.executable, str(ROOT / "benchmarks" / "search.py"), "--runs", "3000", "--repeat", "2"]
    if backend == "postgres":
        assert PG_URL
        args += ["--database-url", PG_URL]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["runs"] == 3000 and report["database"] == ("postgresql" if backend == "postgres" else "sqlite")
    from benchmarks.search import SEARCHES
    assert [s["search"] for s in report["searches"]] == [name for name, _, _ in SEARCHES]
    for s in report["searches"]:
        assert 0 < s["p50_ms"] <= s["p99_ms"], s
    # the data is such that the searches find something (not all empty by a seeding mistake)
    assert sum(s["mean_rows"] for s in report["searches"]) > 100
    assert {"cpus", "python"} <= set(report["machine"])

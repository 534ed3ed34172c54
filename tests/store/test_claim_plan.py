"""The claim on SQLite fetches the runs it picked by key, however long the queue is."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from runyard.services.runs import RunService
from runyard.store.tables import metadata


def test_sqlite_claim_takes_the_picked_runs_by_key(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    metadata.create_all(engine)
    statement, _columns = RunService._claim_statement(SimpleNamespace(db=SimpleNamespace(is_postgres=False)))
    compiled = statement.compile(dialect=sqlite.dialect())
    values = compiled.construct_params({"lim": 4, "worker": "w", "now": None, "lease_until": None})
    with engine.connect() as conn:
        plan = [row[3] for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + compiled.string, tuple(values[name] for name in compiled.positiontup or ()))]
    # The outer UPDATE finds its rows by primary key; only the LIMITed pick walks the
    # queue index (an outer status test would walk every queued row instead).
    assert plan[0].startswith("SEARCH runs USING") and "(id=?)" in plan[0], plan
    assert any("ix_runs_claim (status=?)" in step for step in plan[1:]), plan

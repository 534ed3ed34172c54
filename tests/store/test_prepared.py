"""Prepared statements write and read exactly what SQLAlchemy Core writes and reads,
the values most runs carry (None, empty JSON objects) included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from runyard.store.db import Database
from runyard.store.prepared import Prepared

metadata = sa.MetaData()
things = sa.Table(
    "things", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("doc", sa.JSON),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True)),
)
VALUES = [
    {"id": 1, "doc": None, "tags": {}, "at": None},
    {"id": 2, "doc": {}, "tags": {"a": "b"}, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},
    {"id": 3, "doc": [1, {"x": None}], "tags": {}, "at": None},
    {"id": 4, "doc": "null", "tags": {"": []}, "at": None},
]


@pytest.fixture
def db(scratch_db: Database) -> Database:
    metadata.create_all(scratch_db.engine)
    return scratch_db


def test_prepared_round_trip_matches_core(db: Database) -> None:
    insert = Prepared(db.engine.dialect, things.insert().values(
        {c.key: sa.bindparam(c.key, type_=c.type) for c in things.c}))
    select = Prepared(db.engine.dialect, sa.select(things).where(things.c.id == sa.bindparam("b_id")), list(things.c))
    with db.write() as conn:
        for values in VALUES[:2]:
            insert.execute(conn, values)
        conn.execute(things.insert(), VALUES[2:])  # through Core
    with db.read() as conn:
        core = {row.id: row._asdict() for row in conn.execute(sa.select(things))}
        for values in VALUES:
            mine = select.execute(conn, {"b_id": values["id"]})
            assert mine is not None
            assert dict(mine._mapping) == core[values["id"]]
            assert core[values["id"]]["doc"] == values["doc"] and core[values["id"]]["tags"] == values["tags"]
        first, second = (select.execute(conn, {"b_id": 1}) for _ in range(2))
    assert first is not None and second is not None
    first.tags["changed"] = True  # a decoded {} is the caller's own
    assert second.tags == {}

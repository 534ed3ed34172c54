"""Group commit on a real database: batches from many threads, failures isolated."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from runyard.store.db import Database
from runyard.store.group_commit import GroupCommitter


@pytest.fixture
def db(scratch_db: Database) -> Database:
    with scratch_db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE)")
    return scratch_db


def test_concurrent_writes_commit_and_failures_stay_isolated(db: Database) -> None:
    committer = GroupCommitter(db)
    errors: list[Exception] = []

    def insert(i: int) -> None:
        name = "dup" if i % 10 == 0 else f"n{i}"
        try:
            committer.run(lambda conn: conn.execute(sa.text("INSERT INTO items (id, name) VALUES (:i, :n)"),
                                                    {"i": i, "n": name}))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as conn:
        names = {r.name for r in conn.execute(sa.text("SELECT name FROM items"))}
    # 20 writes collide on the unique name: exactly one of them wins, the rest fail alone.
    assert len(errors) == 19
    assert all(isinstance(e, sa.exc.IntegrityError) for e in errors)
    assert len(names) == 181 and "dup" in names


def test_result_is_returned(db: Database) -> None:
    committer = GroupCommitter(db)
    assert committer.run(lambda conn: conn.execute(sa.text("SELECT 41 + 1")).scalar_one()) == 42


def test_connections_killed_while_idle_are_replaced(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ping per checkout, yet a connection the server dropped while idle is not handed out."""
    if not db.is_postgres:
        # This pass runs every other store test; dropped server connections exist only on PostgreSQL.
        pytest.skip("PostgreSQL only: SQLite has no server that can drop a connection")
    import psycopg

    from runyard.store import db as db_module

    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with psycopg.connect(db.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    monkeypatch.setattr(db_module, "IDLE_PING_S", 0.0)  # as if it had been idle long enough
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid


def test_lead_passes_on_across_many_small_batches(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """More writers than a batch holds: leaders commit what was queued before theirs, hand
    the lead to a waiting writer, and every writer gets its own result."""
    from runyard.store import group_commit

    monkeypatch.setattr(group_commit, "MAX_BATCH", 3)
    committer = GroupCommitter(db)
    results: dict[int, int] = {}
    start = threading.Barrier(64)

    def write(i: int) -> None:
        start.wait()
        results[i] = committer.run(lambda conn: conn.execute(
            sa.text("INSERT INTO items (id, name) VALUES (:i, :n) RETURNING id"), {"i": i, "n": f"w{i}"}).scalar_one())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert results == {i: i for i in range(64)}


def test_a_commit_that_dies_fails_its_batch_and_the_next_one_goes_on(db: Database) -> None:
    committer = GroupCommitter(db)

    def dies(conn: sa.Connection) -> None:
        raise KeyboardInterrupt  # not an Exception: it ends the whole transaction

    with pytest.raises(KeyboardInterrupt):
        committer.run(dies)
    assert committer.run(lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one()) == 1

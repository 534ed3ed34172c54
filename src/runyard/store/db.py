"""Database engine set-up for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from runyard.store.prepared import PreparedCache


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Keep a connection per thread that may use one (API thread pool, workers):
            # opening a SQLite connection (and its PRAGMAs) per request is costly.
            pool_size=64,
            max_overflow=64,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets readers proceed during a write; NORMAL sync is durable across
            # process crashes (the WAL is fsynced at checkpoints).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # pysqlite's own transaction handling defers BEGIN; take a write lock at
            # BEGIN so read-then-write transactions can't deadlock into SQLITE_BUSY.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Reads run in autocommit mode (each statement sees a consistent snapshot on
            # its own); writes take the write lock up front.
            if conn.info.get("write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = sa.create_engine(url, pool_size=20, max_overflow=40)
    _ping_when_idle(engine)
    return engine


IDLE_PING_S = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling without a round trip per checkout.

    ``pool_pre_ping`` pings on every checkout, which on the hot path of a run (several
    checkouts) costs more than the statements. A connection that was in use in the last
    seconds is alive (or the failure would have invalidated it); only one idle for longer
    is pinged, and a failed ping makes the pool replace it (it retries the checkout).
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _fresh(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING_S:
            return
        try:
            cur = dbapi_conn.cursor()
            cur.execute("SELECT 1")
            cur.close()
            dbapi_conn.rollback()
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"stale connection: {exc}") from exc


class Database:
    """Thin wrapper: a read transaction or a write transaction, nothing more."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.prepared = PreparedCache(self.engine.dialect)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info["write"] = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

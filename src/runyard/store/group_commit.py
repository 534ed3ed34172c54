"""Group commit: many small writes from many threads, one transaction and one commit.

Hot-path writes (run creation, run completion) are queued; one thread at a time commits
everything queued, each piece in its own SAVEPOINT (so one failure does not undo the
others). On SQLite this also replaces the threads' contention for the write lock (and
the busy-handler sleeps it causes) with a queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from runyard.store.db import Database
from runyard.store.prepared import Prepared
from runyard.store.rows import RowView

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 256


class GroupCommitter:
    """Leader/follower group commit: whoever finds no commit in progress commits
    everything queued so far in its own thread (no hand-off when uncontended); the others
    wait and are either carried along by that commit or lead the next one."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cond = threading.Condition()
        self._pending: list[tuple[Callable[[Connection], Any], Future]] = []
        self._leading = False

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` inside a group transaction; returns once it is committed."""
        future: Future = Future()
        with self._cond:
            self._pending.append((fn, future))
            while not future.done():
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    self._cond.notify_all()
        return future.result()

    def run_statement(self, statement: Prepared, values: Mapping[str, Any]) -> RowView | None:
        """One hot-path statement; its first row (RETURNING), if any.

        On PostgreSQL it runs alone in autocommit: one round trip, and the server merges
        the WAL flushes of concurrent commits itself. A group transaction would add
        BEGIN, a SAVEPOINT and RELEASE per statement, and COMMIT, each a round trip.
        On SQLite it joins the group commit.
        """
        if self.db.is_postgres:
            return statement.execute_alone(self.db.engine, values)
        return self.run(lambda conn: statement.execute(conn, values))

    def close(self) -> None:
        """Nothing to stop: commits happen in the callers' threads."""

    def _commit(self, batch: list[tuple[Callable[[Connection], Any], Future]]) -> None:
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        try:
            with self.db.write() as conn:
                single = len(batch) == 1
                for fn, future in batch:
                    if single:  # no savepoint needed: the transaction is the unit
                        outcomes.append((future, fn(conn), None))
                        continue
                    savepoint = conn.begin_nested()
                    try:
                        result = fn(conn)
                        savepoint.commit()
                        outcomes.append((future, result, None))
                    except Exception as exc:
                        savepoint.rollback()
                        outcomes.append((future, None, exc))
        except BaseException as exc:  # the commit itself failed: nothing of the batch stands
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for future, result, error in outcomes:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

"""Group commit: many small writes from many threads, one transaction and one commit.

Hot-path writes (run creation, run completion) are queued; one thread at a time commits
everything queued in one transaction (again with each piece in its own SAVEPOINT if one
failed, so one failure does not undo the others). On SQLite this also replaces the threads' contention for the write lock (and
the busy-handler sleeps it causes) with a queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from runyard.store.db import Database
from runyard.store.prepared import Prepared
from runyard.store.rows import RowView

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 256


class _Waiter:
    """One queued write: its function, its outcome, and a lock its thread sleeps on."""

    __slots__ = ("fn", "result", "error", "done", "wake")

    def __init__(self, fn: Callable[[Connection], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Lock()
        self.wake.acquire()  # released once: when done, or to hand over the lead

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommitter:
    """Leader/follower group commit: whoever finds no commit in progress commits
    everything queued so far in its own thread (no hand-off when uncontended); the others
    sleep until a commit carries theirs along, or until the lead is handed to them.

    Each waiting thread is woken exactly once (no wake-all on a shared condition, whose
    cost grows with the square of the threads waiting).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._pending: list[_Waiter] = []
        self._leading = False

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` inside a group transaction; returns once it is committed."""
        me = _Waiter(fn)
        with self._lock:
            self._pending.append(me)
            follow = self._leading
            self._leading = True
        if follow:
            me.wake.acquire()
            if me.done:
                return me.outcome()  # type: ignore[no-any-return]
        # Leading: commit batches until ours is among them, then pass the lead on.
        try:
            while not me.done:
                with self._lock:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    self._commit(batch)
                finally:
                    for waiter in batch:
                        if waiter is not me:
                            waiter.wake.release()
        finally:
            with self._lock:
                successor = self._pending[0] if self._pending else None
                self._leading = successor is not None
            if successor is not None:
                successor.wake.release()  # not done: it wakes up leading
        return me.outcome()  # type: ignore[no-any-return]

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

    def _commit(self, batch: list[_Waiter]) -> None:
        """Commit the batch; every waiter in it is done afterwards (result or error).

        All writes in one transaction first. If one of them fails, nothing of that try
        stands, and the batch is written again with each write in its own savepoint, so
        the failure (a reused Idempotency-Key, say) stays its writer's alone. Failures
        are rare; a savepoint costs more than a hot-path write itself.
        """
        try:
            if len(batch) == 1 or not self._commit_together(batch):
                self._commit_apart(batch)
        except BaseException as exc:  # the commit itself failed: nothing of the batch stands
            for waiter in batch:
                waiter.result, waiter.error = None, waiter.error or exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for waiter in batch:
                waiter.done = True

    def _commit_together(self, batch: list[_Waiter]) -> bool:
        """Every write in one transaction; False (nothing written) when one failed."""
        try:
            with self.db.write() as conn:
                results = [waiter.fn(conn) for waiter in batch]
        except Exception:  # noqa: BLE001 - written again apart, where it is reported
            return False
        for waiter, result in zip(batch, results, strict=True):
            waiter.result = result
        return True

    def _commit_apart(self, batch: list[_Waiter]) -> None:
        """One transaction, each write in its own savepoint (none for a lone write)."""
        with self.db.write() as conn:
            if len(batch) == 1:
                batch[0].result = batch[0].fn(conn)
                return
            for waiter in batch:
                savepoint = conn.begin_nested()
                try:
                    waiter.result = waiter.fn(conn)
                    savepoint.commit()
                except Exception as exc:
                    savepoint.rollback()
                    waiter.error = exc

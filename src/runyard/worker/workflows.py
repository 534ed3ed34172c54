"""The workflow driver of a worker node: moves workflow runs on when their steps end.

A step's end publishes ``workflow.advance`` with its workflow run's id (bridged to every
node on PostgreSQL); the driver advances that run on one of its threads, one advance per
run at a time on this node (pokes that arrive meanwhile make one more pass). A sweep every
``sweep_s`` advances every going workflow run and ends expired waits, so a node that died
between a step's end and its advance delays a workflow, never strands it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runyard.wiring import Platform

log = logging.getLogger(__name__)
SWEEP_S = 2.0


class WorkflowDriver:
    def __init__(self, platform: Platform, *, threads: int = 2, sweep_s: float = SWEEP_S) -> None:
        self.platform = platform
        self.sweep_s = sweep_s
        self._threads = threads
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._unsubscribe: Any = None

    def start(self) -> None:
        self._unsubscribe = self.platform.hub.subscribe("workflow.advance", self._on_poke)
        for i in range(self._threads):
            thread = threading.Thread(target=self._loop, name=f"runyard-workflows-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        sweeper = threading.Thread(target=self._sweep_loop, name="runyard-workflow-sweep", daemon=True)
        sweeper.start()
        self._workers.append(sweeper)

    def stop(self, timeout: float = 5.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _on_poke(self, topic: str, run_id: Any) -> None:
        if not isinstance(run_id, str):
            return
        with self._cond:
            if run_id in self._busy:
                self._again.add(run_id)
            else:
                self._pending[run_id] = None
                self._cond.notify()

    def _take(self) -> str | None:
        with self._cond:
            while not self._pending and not self._stop.is_set():
                self._cond.wait(1.0)
            if self._stop.is_set():
                return None
            run_id = next(iter(self._pending))
            del self._pending[run_id]
            self._busy.add(run_id)
            return run_id

    def _loop(self) -> None:
        while (run_id := self._take()) is not None:
            try:
                self.platform.workflow_runs.advance(run_id)
            except Exception:
                log.exception("advancing workflow run %s failed", run_id)
            finally:
                with self._cond:
                    self._busy.discard(run_id)
                    if run_id in self._again:
                        self._again.discard(run_id)
                        self._pending[run_id] = None
                        self._cond.notify()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_s):
            try:
                self.platform.workflow_runs.sweep()
            except Exception:
                log.exception("the workflow sweep failed")

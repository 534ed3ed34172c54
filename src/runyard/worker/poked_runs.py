"""A worker node's driver of runs that move when poked: a hub topic names a run, one of the
driver's threads handles it, one pass per run at a time on this node (pokes that arrive
meanwhile make one more pass), and a sweep every ``sweep_s`` catches what a lost poke or a
dead node left behind. Workflow runs (worker.workflows) and ingest proxy runs
(worker.ingest_proxy) are driven this way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
SWEEP_S = 2.0


class PokedRunDriver:
    """Subclasses set ``topic`` and ``name`` and give ``handle`` (one pass over a run) and
    ``sweep``; ``background`` lists further threads to run beside the sweep."""

    topic = ""
    name = ""

    def __init__(self, hub: Any, *, threads: int = 2, sweep_s: float = SWEEP_S) -> None:
        self.hub = hub
        self.sweep_s = sweep_s
        self._threads = threads
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._busy: set[str] = set()
        self._again: set[str] = set()  # poked while busy: one more pass
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._unsubscribe: Any = None

    def handle(self, run_id: str) -> None:
        raise NotImplementedError

    def sweep(self) -> None:
        raise NotImplementedError

    def background(self) -> list[tuple[Callable[[], None], str]]:
        return [(self._sweep_loop, "sweep")]

    def start(self) -> None:
        self._unsubscribe = self.hub.subscribe(self.topic, self.poke)
        targets = [(self._loop, str(i)) for i in range(self._threads)] + self.background()
        for target, suffix in targets:
            thread = threading.Thread(target=target, name=f"runyard-{self.name}-{suffix}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def poke(self, topic: str, run_id: Any) -> None:
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
                self.handle(run_id)
            except Exception:
                log.exception("%s run %s failed in the driver", self.name, run_id)
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
                self.sweep()
            except Exception:
                log.exception("the %s sweep failed", self.name)

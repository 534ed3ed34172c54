"""The ingest proxy driver of a worker node: executes ingest proxy runs' phases.

A run is taken with a lease (``ingest_proxy_runs.lease_*``), renewed by a heartbeat thread
while its phases run, released when it ends or waits for a hook's answer. A start or an
answer publishes ``ingest_proxy.resume`` (bridged to every node on PostgreSQL); a sweep every
``sweep_s`` takes the going runs with no live lease — new ones whose poke was lost, and runs
whose node died mid-phase, resumed after their last completed phase — and gives ended runs
their last event when they lack it (cancelled while waiting).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runyard.wiring import Platform

log = logging.getLogger(__name__)
SWEEP_S = 2.0


class IngestProxyDriver:
    def __init__(self, platform: Platform, *, threads: int = 2, sweep_s: float = SWEEP_S) -> None:
        self.platform = platform
        self.service = platform.ingest_proxy
        self.owner = f"proxy-{uuid.uuid4().hex[:16]}"
        self.lease_s = platform.settings.lease_s
        self.sweep_s = sweep_s
        self._threads = threads
        self._cond = threading.Condition()
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._busy: set[str] = set()
        self._again: set[str] = set()  # poked while busy (answered while it was being parked): once more
        self._held: set[str] = set()
        self._lost: set[str] = set()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._unsubscribe: Any = None

    def start(self) -> None:
        self._unsubscribe = self.platform.hub.subscribe("ingest_proxy.resume", self._on_poke)
        for i in range(self._threads):
            thread = threading.Thread(target=self._loop, name=f"runyard-ingest-proxy-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)
        for target, name in ((self._sweep_loop, "sweep"), (self._heartbeat_loop, "heartbeat")):
            thread = threading.Thread(target=target, name=f"runyard-ingest-proxy-{name}", daemon=True)
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
                if self.service.claim(run_id, self.owner, self.lease_s):
                    with self._cond:
                        self._held.add(run_id)
                        self._lost.discard(run_id)
                    try:
                        self.service.execute(run_id, self.owner, holds=lambda r=run_id: r not in self._lost)
                    finally:
                        with self._cond:
                            self._held.discard(run_id)
                        self.service.release(run_id, self.owner)
            except Exception:
                log.exception("ingest proxy run %s failed in the driver", run_id)
            finally:
                with self._cond:
                    self._busy.discard(run_id)
                    if run_id in self._again:
                        self._again.discard(run_id)
                        self._pending[run_id] = None
                        self._cond.notify()

    def _heartbeat_loop(self) -> None:
        interval = max(0.2, self.lease_s / 3)
        while not self._stop.wait(interval):
            with self._cond:
                held = sorted(self._held)
            if not held:
                continue
            try:
                still = self.service.renew(held, self.owner, self.lease_s)
            except Exception:
                log.exception("renewing ingest proxy leases failed")
                continue
            with self._cond:
                self._lost.update(set(held) - still)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_s):
            try:
                for run_id in self.service.to_drive():
                    self._on_poke("ingest_proxy.resume", run_id)
            except Exception:
                log.exception("the ingest proxy sweep failed")

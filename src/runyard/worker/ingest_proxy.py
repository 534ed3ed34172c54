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
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from runyard.worker.poked_runs import SWEEP_S, PokedRunDriver

if TYPE_CHECKING:
    from runyard.wiring import Platform

log = logging.getLogger(__name__)


class IngestProxyDriver(PokedRunDriver):
    topic = "ingest_proxy.resume"
    name = "ingest-proxy"

    def __init__(self, platform: Platform, *, threads: int = 2, sweep_s: float = SWEEP_S) -> None:
        super().__init__(platform.hub, threads=threads, sweep_s=sweep_s)
        self.platform = platform
        self.service = platform.ingest_proxy
        self.owner = f"proxy-{uuid.uuid4().hex[:16]}"
        self.lease_s = platform.settings.lease_s
        self._held: set[str] = set()
        self._lost: set[str] = set()  # held here, but the lease went to another node

    def background(self) -> list[tuple[Callable[[], None], str]]:
        return [*super().background(), (self._heartbeat_loop, "heartbeat")]

    def handle(self, run_id: str) -> None:
        if not self.service.claim(run_id, self.owner, self.lease_s):
            return
        with self._cond:
            self._held.add(run_id)
            self._lost.discard(run_id)
        try:
            self.service.execute(run_id, self.owner, holds=lambda: run_id not in self._lost)
        finally:
            with self._cond:
                self._held.discard(run_id)
            self.service.release(run_id, self.owner)

    def sweep(self) -> None:
        for run_id in self.service.to_drive():
            self.poke(self.topic, run_id)

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

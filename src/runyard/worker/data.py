"""The data side of a worker: file ingestions, cleaning tasks, and the upkeep of stored datasets.

One thread per slot claims pending ingestions and processes them (each parses in the
sandbox); one upkeep thread requeues ingestions whose worker died, compacts datasets with
many small parts, expires unfinished uploads and deletes retired parts once no query can
still read them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from runyard.ids import new_id

if TYPE_CHECKING:
    from runyard.wiring import Platform

log = logging.getLogger(__name__)
UPKEEP_S = 10.0  # at most; a short lease makes it check more often


class DataWorker:
    def __init__(self, platform: Platform, slots: int = 1) -> None:
        self.platform = platform
        self.slots = max(1, slots)
        self.id = new_id("wrk")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.slots):
            self._threads.append(threading.Thread(target=self._ingest_loop, name=f"runyard-ingest-{n}", daemon=True))
        self._threads.append(threading.Thread(target=self._cleaning_loop, name="runyard-cleaning", daemon=True))
        self._threads.append(threading.Thread(target=self._upkeep_loop, name="runyard-data-upkeep", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.platform.ingestions.wakeup.set()
        self.platform.cleaning.wakeup.set()
        for thread in self._threads:
            thread.join(timeout)

    def _ingest_loop(self) -> None:
        self._claim_loop(self.platform.ingestions, "an ingestion")

    def _cleaning_loop(self) -> None:
        """Cleaning tasks (services.cleaning), one at a time per node: each is a model call
        and a sandboxed transform, so they do not take the ingestion slots."""
        self._claim_loop(self.platform.cleaning, "a cleaning task")

    def _claim_loop(self, queue: Any, what: str) -> None:
        """Claim ``queue``'s oldest pending item and process it, until stopped; ``queue.wakeup``
        cuts the wait short when new work arrives."""
        while not self._stop.is_set():
            try:
                row = queue.claim(self.id)
            except Exception:
                log.exception("claiming %s failed", what)
                row = None
            if row is None:
                queue.wakeup.wait(1.0)
                queue.wakeup.clear()
                continue
            queue.process(row, self.id)

    def _upkeep_loop(self) -> None:
        interval = min(UPKEEP_S, max(0.5, self.platform.ingestions.lease_s / 2))
        while not self._stop.wait(interval):
            self.upkeep()

    def upkeep(self) -> None:
        platform = self.platform
        for name, task in (("reaping ingestions", platform.ingestions.reap),
                           ("reaping cleaning tasks", platform.cleaning.reap),
                           ("expiring uploads", platform.uploads.expire),
                           ("sweeping retired parts", platform.datasets.sweep),
                           ("removing abandoned file uploads", platform.workspace_files.sweep_abandoned)):
            try:
                task()
            except Exception:
                log.exception("%s failed", name)
        try:
            for dataset_id in platform.datasets.compaction_candidates():
                if self._stop.is_set():
                    return
                platform.datasets.compact(dataset_id)
        except Exception:
            log.exception("compaction failed")

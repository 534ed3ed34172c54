"""The scheduler loop of a worker node: fires due schedules every ``interval_s``.

Every worker node runs one; the database decides which node fires a tick (the
compare-and-set in ``ScheduleService.fire_due``), so more nodes never mean more runs.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runyard.wiring import Platform

log = logging.getLogger(__name__)
POLL_S = 0.5


class Scheduler:
    def __init__(self, platform: Platform, interval_s: float = POLL_S) -> None:
        self.platform = platform
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="runyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.platform.schedules.fire_due()
            except Exception:
                log.exception("firing schedules failed")

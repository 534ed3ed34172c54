"""Per-workspace request rate limit: a fixed one-minute window, counted on this node.

Each API replica counts its own requests, so N replicas admit up to N × the limit; the
embedded single-node mode is exact.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from runyard.services.errors import RateLimited

WINDOW_S = 60.0


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_s: float  # seconds until the window resets


class RateLimiter:
    """``clock``: seconds since the epoch (windows are aligned on whole minutes of it);
    tests pass their own to cross a window without waiting."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # workspace -> (window index, count)
        self._lock = threading.Lock()

    def hit(self, workspace_id: str) -> Quota:
        """Count one request; raises ``RateLimited`` (with ``quota`` attached) past the limit."""
        now = self.clock()
        window = int(now // WINDOW_S)
        reset = (window + 1) * WINDOW_S - now
        with self._lock:
            current, count = self._windows.get(workspace_id, (window, 0))
            if current != window:
                count = 0
            count += 1
            self._windows[workspace_id] = (window, count)
        quota = Quota(self.per_minute, max(0, self.per_minute - count), reset)
        if count > self.per_minute:
            error = RateLimited(f"rate limit of {self.per_minute} requests per minute exceeded",
                                retry_after=math.ceil(reset), details={"limit": self.per_minute})
            error.quota = quota  # type: ignore[attr-defined]
            raise error
        return quota

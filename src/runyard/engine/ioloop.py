"""One I/O thread for all runs: an epoll loop with readers and timers.

The executor reads every run's pipes and the fork server's socket here rather than in a
thread per run. ``add_reader`` and ``call_at`` may be called from any thread; readers
and timer callbacks run on the loop thread and must not block.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_READ_MASK = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
# The loop never sleeps longer than this, so a timer further out than that (a run's
# timeout, typically) needs no wake-up syscall when it is added from another thread.
_MAX_SLEEP_S = 1.0


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class IOLoop:
    def __init__(self, name: str = "runyard-engine-io") -> None:
        self._epoll = select.epoll()
        self._readers: dict[int, Callable[[], None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        # While the loop sleeps, the monotonic time it will wake at; 0 while it is busy
        # (it then re-reads the timer heap anyway, so no wake-up is needed).
        self._sleeping_until = 0.0
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._epoll.close()
        os.close(self._wake_fd)

    # ------------------------------------------------------------------ registration

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop thread) whenever ``fd`` is readable or hung up."""
        self._readers[fd] = callback
        self._epoll.register(fd, _READ_MASK)

    def remove_reader(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the loop thread at monotonic time ``when``."""
        timer = Timer(when, callback)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._seq), timer))
            wake = when < self._sleeping_until
        if wake:
            self._wake()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(time.monotonic() + delay, callback)

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wake_fd, 1)
        except OSError:
            pass

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        while not self._stopping:
            with self._lock:
                now = time.monotonic()
                timeout = _MAX_SLEEP_S
                if self._timers:
                    timeout = min(timeout, max(0.0, self._timers[0][0] - now))
                self._sleeping_until = now + timeout
            try:
                events = self._epoll.poll(timeout)
            finally:
                with self._lock:
                    self._sleeping_until = 0.0
            for fd, _mask in events:
                if fd == self._wake_fd:
                    try:
                        os.eventfd_read(self._wake_fd)
                    except BlockingIOError:
                        pass
                    continue
                callback = self._readers.get(fd)
                if callback is not None:
                    self._guard(callback)
            self._run_due_timers()

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > now:
                    return
                _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._guard(timer.callback)

    @staticmethod
    def _guard(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # noqa: BLE001 - one faulty run/callback must not stop the engine
            log.exception("engine I/O callback failed")

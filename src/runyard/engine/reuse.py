"""Processes kept for the next run of the tool version they ran (``reuse_process``).

A reused process waits on its socket for the next request; closing the executor's end
of that socket retires it (it reads EOF, runs its exit handlers and exits). The pool
hands out the most recently used process first, so a steady load keeps a small hot set
and the rest idle out; beyond ``limit`` the least recently used retires at once.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class _Waiting:
    key: Hashable
    sock: socket.socket
    since: float


class ReusePool:
    def __init__(self, limit: int, idle_s: float) -> None:
        self.limit = limit
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._waiting: collections.OrderedDict[int, _Waiting] = collections.OrderedDict()  # pid -> ..., oldest first

    def take(self, key: Hashable) -> tuple[int, socket.socket] | None:
        """The most recently used process waiting with ``key``, out of the pool."""
        with self._lock:
            for pid in reversed(self._waiting):
                if self._waiting[pid].key == key:
                    return pid, self._waiting.pop(pid).sock
        return None

    def put(self, key: Hashable, pid: int, sock: socket.socket) -> None:
        retired = []
        with self._lock:
            self._waiting[pid] = _Waiting(key, sock, time.monotonic())
            while len(self._waiting) > self.limit:
                retired.append(self._waiting.popitem(last=False)[1].sock)
        for old in retired:
            old.close()

    def discard(self, pid: int) -> bool:
        """Forget a process that died while waiting; True if it was here."""
        with self._lock:
            waiting = self._waiting.pop(pid, None)
        if waiting is None:
            return False
        waiting.sock.close()
        return True

    def retire_idle(self) -> None:
        """Retire the processes that waited longer than ``idle_s``."""
        cutoff = time.monotonic() - self.idle_s
        retired = []
        with self._lock:
            while self._waiting:
                pid, waiting = next(iter(self._waiting.items()))
                if waiting.since > cutoff:
                    break
                del self._waiting[pid]
                retired.append(waiting.sock)
        for sock in retired:
            sock.close()

    def clear(self) -> None:
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), collections.OrderedDict()
        for entry in waiting:
            entry.sock.close()

    def __len__(self) -> int:
        return len(self._waiting)

"""Fork servers that preload what a tool imports, learned from the tool's runs.

The base fork server holds little beyond the runtime, because forking, the children's
copy-on-write faults and their exit all cost more the larger the parent is. A tool that
imports more (pydantic, httpx, duckdb, ``asyncio``...) would import it again in every
run, which costs far more than the fork. So each forked run reports the modules it
imported beyond its fork server's (``child.imported_modules``); the executor learns
them per tool version (its source dir and module) and starts, in the background, a fork
server that preloads exactly that set. Later runs of the tool fork from it and start
with their imports done; tools that import the same set share one.

Tools with requirements run under their virtualenv's interpreter. Without a server of
their own each run starts that interpreter (tens of milliseconds); so for them a fork server runs
*under that interpreter* (with the set learned for the tool, or none yet), and their
runs fork from it like any other: the set is keyed by interpreter too.

Bounds: at most ``limit`` such servers at a time (a tool whose set finds no room keeps
forking from the base server until an idle one retires after ``idle_s``); a tool's set
grows at most ``MAX_GROWTHS`` times; a set whose server fails to start or does not stay
up is not tried again. A server whose preload started a thread is refused by the
executor (``_ForkServer``): forking a threaded process is unsafe.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

S = TypeVar("S")  # a fork server handle: has ``dead``
Python = str | None  # a tool's interpreter (a virtualenv's), None for runyard's own

MAX_GROWTHS = 3  # a tool's learned set grows at most this often (then it stays)
MAX_RESTARTS = 2  # a set whose server died this often is not started again
MAX_MODULES = 1500
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def preloadable(name: Any) -> bool:
    """Whether a reported name may be imported in a fork server: a dotted identifier, not
    runyard's own modules (but its data library, whose sandboxed jobs import tens of
    milliseconds of it and which holds no state), not a package's ``__main__`` (importing
    that runs a program)."""
    if not isinstance(name, str) or len(name) > 200 or not _MODULE_NAME.fullmatch(name):
        return False
    if name.partition(".")[0] == "runyard" and not name.startswith("runyard.data."):
        return False
    return "__main__" not in name.split(".")


@dataclass
class _Profile(Generic[S]):
    python: Python
    modules: tuple[str, ...]  # in import order
    server: S | None = None  # None while it starts (or after it failed)
    failed: bool = False
    restarts: int = 0
    last_used: float = field(default_factory=time.monotonic)


class PreloadProfiles(Generic[S]):
    """What each tool imports, and the fork servers preloading it. Thread-safe."""

    def __init__(self, start: Callable[[Python, tuple[str, ...]], S], stop: Callable[[S], None], *,
                 busy: Callable[[S], bool], limit: int, idle_s: float) -> None:
        self._start = start  # blocking: a ready server (interpreter, modules), or raises
        self._stop = stop
        self._busy = busy  # whether a server has runs in flight
        self.limit = limit
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._learned: dict[Hashable, tuple[tuple[str, ...], frozenset[str]]] = {}  # in order, as a set
        self._growths: dict[Hashable, int] = {}
        self._profiles: dict[tuple[Python, frozenset[str]], _Profile[S]] = {}
        self._closed = False

    def learn(self, key: Hashable, modules: Any, python: Python = None) -> None:
        """A run of ``key`` (under ``python``) imported ``modules`` (as its runtime reported them)."""
        if self.limit <= 0 or not isinstance(modules, list):
            return
        names = [name for name in modules[:MAX_MODULES] if preloadable(name)]
        if not names:
            return
        with self._lock:
            known, seen = self._learned.get(key, ((), frozenset()))
            new = list(dict.fromkeys(name for name in names if name not in seen))
            if not new or self._growths.get(key, 0) >= MAX_GROWTHS:
                return
            modules = (*known, *new)[:MAX_MODULES]
            self._learned[key] = (modules, frozenset(modules))
            self._growths[key] = self._growths.get(key, 0) + 1
            if (python, frozenset(modules)) not in self._profiles:
                self._start_later((python, frozenset(modules)), python, modules)  # ready for the next runs

    def server_for(self, key: Hashable, python: Python = None) -> S | None:
        """The ready server (under ``python``) preloading what ``key`` imports; None means:
        use the base server (the set is not known yet, its server is starting, or there is
        no room for it)."""
        learned = self._learned.get(key)
        if learned is None:
            if python is None:
                return None
            learned = ((), frozenset())  # the interpreter alone is worth a server
        modules, names = learned
        profile_key = (python, names)
        with self._lock:
            profile = self._profiles.get(profile_key)
            if profile is None:
                self._start_later(profile_key, python, modules)
                return self._bare(python)
            server = profile.server
            if server is None:
                return self._bare(python)
            if getattr(server, "dead", False):  # it died: start it again (a few times)
                profile.server = None
                profile.restarts += 1
                if profile.restarts > MAX_RESTARTS:
                    profile.failed = True
                    log.warning("the fork server preloading %d modules keeps dying; not restarted",
                                len(profile.modules))
                else:
                    self._spawn(profile_key, profile)
                return None
            profile.last_used = time.monotonic()
            return server

    def _bare(self, python: Python) -> S | None:
        """Meanwhile, a ready server under the tool's interpreter with nothing preloaded:
        still far cheaper than starting the interpreter (called with the lock held)."""
        if python is None:
            return None
        profile = self._profiles.get((python, frozenset()))
        server = None if profile is None else profile.server
        return None if server is None or getattr(server, "dead", False) else server

    def _start_later(self, profile_key: tuple[Python, frozenset[str]], python: Python,
                     modules: tuple[str, ...]) -> None:
        """Start a server for a new set, if there is room (called with the lock held)."""
        if self._closed or sum(not p.failed for p in self._profiles.values()) >= self.limit:
            return
        profile: _Profile[S] = _Profile(python, modules)
        self._profiles[profile_key] = profile
        self._spawn(profile_key, profile)

    def _spawn(self, profile_key: tuple[Python, frozenset[str]], profile: _Profile[S]) -> None:
        threading.Thread(target=self._start_server, args=(profile_key, profile), daemon=True,
                         name="runyard-preload").start()

    def _start_server(self, profile_key: tuple[Python, frozenset[str]], profile: _Profile[S]) -> None:
        try:
            server = self._start(profile.python, profile.modules)
        except Exception as exc:  # noqa: BLE001 - the tool keeps forking from the base server
            log.warning("not preloading %d modules for a tool: %s", len(profile.modules), exc)
            with self._lock:
                profile.failed = True
            return
        with self._lock:
            keep = not self._closed and self._profiles.get(profile_key) is profile
            if keep:
                profile.server = server
                profile.last_used = time.monotonic()
        if not keep:
            self._stop(server)

    def retire_idle(self) -> None:
        """Stop servers unused for ``idle_s`` with nothing in flight (their sets may start again)."""
        cutoff = time.monotonic() - self.idle_s
        idle: list[S] = []
        with self._lock:
            for profile_key, profile in list(self._profiles.items()):
                server = profile.server
                if server is not None and profile.last_used < cutoff and not self._busy(server):
                    del self._profiles[profile_key]
                    idle.append(server)
        for server in idle:
            self._stop(server)

    def servers(self) -> list[S]:
        with self._lock:
            return [p.server for p in self._profiles.values() if p.server is not None]

    def close(self) -> list[S]:
        """Forget every set; returns the live servers for the caller to stop."""
        with self._lock:
            self._closed = True
            servers = [p.server for p in self._profiles.values() if p.server is not None]
            self._profiles.clear()
        return servers

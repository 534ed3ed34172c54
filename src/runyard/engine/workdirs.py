"""Empty run dirs kept for later runs, instead of removed and made again.

A run gets three dirs (work dir, its ``.tmp``, and the output dir beside it). On ext4,
making and removing directories at a few hundred runs a second costs far more than the
syscalls suggest: each new directory's inode allocation skips every recently deleted
inode it meets, so with churn a run's three ``mkdir`` and three ``rmdir`` cost several
times what four renames do, on the run's path (figures: docs/performance.md).

So the set of dirs a run leaves empty is moved, once nothing of the run can still write
(its process exited and its process group was killed), into a pool beside the work dirs
(``<work root>/.recycled-<pid>-<token>-<host>/u<n>``, holding ``.tmp`` and ``.out``); the next
run's child takes a set with two renames (``child._take_recycled``). A set is kept only
if it is exactly as made: real directories (no symlinks), the original mode, nothing in
them; anything else is removed. Each executor has a pool of its own (no other process
takes from it); pools of executors that died are removed when the next one on the
same host starts (a data dir may be shared between machines: only pids of this host
can be checked).
"""

from __future__ import annotations

import collections
import itertools
import os
import secrets
import shutil
import stat
import threading
from pathlib import Path

from runyard.engine.child import POOL_PREFIX, pool_name, stash_dirs

DEFAULT_LIMIT = 256  # empty sets kept at most (more are removed)


class DirRecycler:
    def __init__(self, root: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.root = str(root)
        self.limit = limit
        root.mkdir(parents=True, exist_ok=True)
        _remove_dead_pools(root)
        self.pool = os.path.join(self.root, pool_name(os.getpid(), secrets.token_hex(4)))
        os.mkdir(self.pool)
        self.mode = stat.S_IMODE(os.lstat(self.pool).st_mode)  # what mkdir gives under this umask
        self._free: collections.deque[str] = collections.deque()
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    def covers(self, workdir: str, output_dir: str) -> bool:
        """Whether a run's dirs are where recycled sets can go (beside the pool)."""
        return os.path.dirname(workdir) == self.root and os.path.dirname(output_dir) == self.root

    def take(self) -> str | None:
        """An empty set for a run's child to rename into place, if one is kept."""
        with self._lock:
            return self._free.pop() if self._free else None

    def give_back(self, workdir: str, output_dir: str) -> None:
        """Keep a finished run's dirs for a later run if they are as made and empty, else
        remove them. Call it only when nothing of the run can still write to them."""
        with self._lock:
            room = not self._closed and len(self._free) < self.limit
            unit = os.path.join(self.pool, f"u{next(self._names)}")
        if room and stash_dirs(workdir, output_dir, unit, self.mode):
            with self._lock:
                self._free.append(unit)
            return
        remove_later([workdir, output_dir])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._free.clear()
        shutil.rmtree(self.pool, ignore_errors=True)


def remove_later(paths: list[str]) -> None:
    """Remove dirs (whatever is in them) in a thread of their own: a run may have left a lot."""
    def remove() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    threading.Thread(target=remove, name="runyard-rmtree", daemon=True).start()


def _remove_dead_pools(root: Path) -> None:
    """Pools of this host's executors (and reused processes) that are gone: a crash
    leaves its pool behind."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    host = os.uname().nodename
    dead = []
    # A reused process keeps its held set in its version's dir (``reuse-<version>``).
    places = [(root, names)]
    for name in names:
        if name.startswith("reuse-"):
            try:
                places.append((root / name, os.listdir(root / name)))
            except OSError:
                pass
    for place, entries in places:
        for name in entries:
            if not name.startswith(POOL_PREFIX):
                continue
            pid, _, rest = name[len(POOL_PREFIX):].partition("-")
            if rest.partition("-")[2] == host and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                dead.append(str(place / name))
    if dead:
        remove_later(dead)

"""Per-run control groups: a memory cap for the run as a whole, a process cap, one write
that kills everything the run started, and the network filter on their parent.

Each executor owns a directory ``runyard-<host>-<pid>-<n>`` below its own cgroup in every
hierarchy it uses (cgroup v1 ``memory`` and ``pids`` where those are v1 controllers, and
the cgroup2 tree, which has ``cgroup.kill`` and BPF attachment). Below it, groups are
made on demand and reused: a group is taken for a run's process, which joins it itself
before any tool code runs (``sandbox.confine``), and given back when that process has
exited, after ``cgroup.kill`` took whatever it left running. Groups are kept per memory
limit, so a group's limit is written once, when it is made.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_UNLIMITED = "max"
_instances = itertools.count(1)  # executors of one process (tests make several)


def _mounts() -> tuple[dict[str, Path], Path | None]:
    """v1 hierarchies by controller, and the cgroup2 mount point."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields = left.split()
                fstype, _source, options = (right.split() + ["", "", ""])[:3]
                if fstype == "cgroup2" and v2 is None:
                    v2 = Path(fields[4])
                elif fstype == "cgroup":
                    for option in options.split(","):
                        if option in ("memory", "pids"):
                            v1.setdefault(option, Path(fields[4]))
    except OSError:
        pass
    return v1, v2


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and "" for cgroup2."""
    paths: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _id, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(",") if controllers else [""]:
                    paths[controller] = path
    except OSError:
        pass
    return paths


@dataclass
class Group:
    name: str
    memory_mb: int | None
    dirs: dict[str, Path] = field(default_factory=dict)  # "memory", "pids", "unified"
    oom_base: int = 0

    @property
    def procs(self) -> list[str]:
        """The files the run's process writes itself into."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_kills(self) -> int:
        memory = self.dirs.get("memory")
        if memory is None:
            return 0
        for name in ("memory.oom_control", "memory.events"):
            try:
                text = (memory / name).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def pids(self) -> list[int]:
        for d in self.dirs.values():
            try:
                return [int(p) for p in (d / "cgroup.procs").read_text().split()]
            except OSError:
                continue
        return []

    def kill(self) -> None:
        unified = self.dirs.get("unified")
        if unified is not None:
            try:
                (unified / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for _ in range(20):  # no cgroup.kill (kernel < 5.14): kill what is listed until none is left
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


class RunGroups:
    """The groups of one executor. Thread-safe."""

    def __init__(self, *, max_processes: int, allowed_ports: list[int], network_filter: bool = True) -> None:
        self.max_processes = max_processes
        self.status: dict[str, str] = {}  # protection -> "active" or why it is missing
        self.bases: dict[str, Path] = {}
        self._free: dict[int | None, list[Group]] = {}
        self._lock = threading.Lock()
        self._count = 0
        name = f"runyard-{os.uname().nodename}-{os.getpid()}-{next(_instances)}"
        v1, v2 = _mounts()
        own = _own_paths()
        v2_controllers: set[str] = set()
        if v2 is not None:
            base = v2 / own.get("", "/").lstrip("/") / name
            try:
                _remove_stale(base.parent)
                base.mkdir(exist_ok=True)
                self.bases["unified"] = base
                with contextlib.suppress(OSError):
                    v2_controllers = set((base / "cgroup.controllers").read_text().split())
            except OSError as exc:
                self.status["run_kill"] = f"missing: cannot make a cgroup2 group ({exc.strerror})"
        for controller in ("memory", "pids"):
            if controller in v1:
                base = v1[controller] / own.get(controller, "/").lstrip("/") / name
                try:
                    _remove_stale(base.parent)
                    base.mkdir(exist_ok=True)
                    if controller == "memory":
                        with contextlib.suppress(OSError):
                            (base / "memory.use_hierarchy").write_text("1")
                    self.bases[controller] = base
                except OSError as exc:
                    self.status[f"{controller}_cap"] = f"missing: cannot make a {controller} cgroup ({exc.strerror})"
            elif controller in v2_controllers and "unified" in self.bases:
                try:
                    (self.bases["unified"] / "cgroup.subtree_control").write_text(f"+{controller}")
                except OSError as exc:
                    self.status[f"{controller}_cap"] = f"missing: cannot enable {controller} ({exc.strerror})"
            else:
                self.status.setdefault(f"{controller}_cap", f"missing: no {controller} cgroup controller")
        self.status.setdefault("memory_cap", "active")
        self.status.setdefault("pids_cap", "active")
        if "unified" in self.bases:
            self.status.setdefault("run_kill", "active")
            if network_filter:
                from runyard.engine import netfilter

                try:
                    netfilter.attach(str(self.bases["unified"]), allowed_ports)
                    self.status["host_services_blocked"] = "active"
                except OSError as exc:
                    self.status["host_services_blocked"] = f"missing: cgroup BPF unavailable ({exc.strerror})"
            else:
                self.status["host_services_blocked"] = "missing: disabled by configuration"
        else:
            self.status.setdefault("run_kill", "missing: no cgroup2 hierarchy")
            self.status["host_services_blocked"] = "missing: no cgroup2 hierarchy"

    @property
    def usable(self) -> bool:
        return bool(self.bases)

    def take(self, memory_mb: int | None) -> Group:
        with self._lock:
            free = self._free.get(memory_mb) or []
            while free:
                group = free.pop()
                if not group.pids():
                    group.oom_base = group.oom_kills()
                    return group
                group.kill()  # still draining: try it again later
                free.insert(0, group)
                break
            self._count += 1
            number = self._count
        group = self._make(f"g{number}", memory_mb)
        group.oom_base = group.oom_kills()
        return group

    def _make(self, name: str, memory_mb: int | None) -> Group:
        group = Group(name, memory_mb)
        for kind, base in self.bases.items():
            path = base / name
            path.mkdir(exist_ok=True)
            group.dirs[kind] = path
        memory = group.dirs.get("memory") or (group.dirs.get("unified") if "memory" not in self.bases else None)
        if memory is not None:
            limit = str(memory_mb * 1024 * 1024) if memory_mb else None
            for name_, value in (("memory.limit_in_bytes", limit or "-1"), ("memory.max", limit or _UNLIMITED)):
                with contextlib.suppress(OSError):
                    (memory / name_).write_text(value)
            with contextlib.suppress(OSError):
                (memory / "memory.swap.max").write_text("0")
        pids = group.dirs.get("pids") or group.dirs.get("unified")
        if pids is not None:
            with contextlib.suppress(OSError):
                (pids / "pids.max").write_text(str(self.max_processes))
        return group

    def release(self, group: Group) -> None:
        """The group's process exited: kill what it left, keep the group for a later run."""
        group.kill()
        with self._lock:
            self._free.setdefault(group.memory_mb, []).append(group)

    def give_back(self, group: Group) -> None:
        """A group taken for a run that went to a process which has one already (unused)."""
        with self._lock:
            self._free.setdefault(group.memory_mb, []).append(group)

    def close(self) -> None:
        with self._lock:
            groups = [g for free in self._free.values() for g in free]
            self._free.clear()
        for group in groups:
            group.kill()
        for base in self.bases.values():
            _remove_tree(base)


def _remove_stale(parent: Path) -> None:
    """Remove groups left by executors of this host that died (their pid is gone)."""
    host = os.uname().nodename
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        prefix = f"runyard-{host}-"
        if not entry.name.startswith(prefix):
            continue
        try:
            pid = int(entry.name[len(prefix):].partition("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            _remove_tree(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(base: Path) -> None:
    """rmdir a group and its children (a cgroup dir is removed empty, files and all)."""
    try:
        children = [c for c in base.iterdir() if c.is_dir()]
    except OSError:
        return
    for child in children:
        _remove_tree(child)
    kill = base / "cgroup.kill"
    if kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")
    for _ in range(50):
        try:
            base.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            threading.Event().wait(0.02)  # its last processes are still exiting
    log.warning("could not remove cgroup %s", base)

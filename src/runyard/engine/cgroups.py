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
from typing import Any

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
        memory = self.dirs.get("memory") or self.dirs.get("unified")
        if memory is None:
            return 0
        for name in ("memory.oom_control", "memory.events"):
            for line in _read(memory / name).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def memory_cap_hit(self) -> bool:
        """Whether the kernel killed a process of the group for its memory cap since the
        last call (called once per run, when its process has exited)."""
        count = self.oom_kills()
        hit, self.oom_base = count > self.oom_base, count
        return hit

    def pids(self) -> list[int]:
        for d in self.dirs.values():
            text = _read(d / "cgroup.procs", None)
            if text is not None:
                return [int(p) for p in text.split()]
        return []

    def kill(self) -> bool:
        """SIGKILL everything in the group; True when it is empty already."""
        unified = self.dirs.get("unified")
        if unified is not None:
            try:
                (unified / "cgroup.kill").write_text("1")
            except OSError:
                pass
            else:
                return not self.pids()
        # No cgroup.kill (a v1 group, or a kernel before 5.14): kill what is listed (see
        # RunGroups.release for what a fork loop adds meanwhile).
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return not pids


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
        # A run's group lives in the v1 memory and pids hierarchies where those are v1
        # controllers (joining each costs its run a write), else in the cgroup2 tree.
        self.run_kinds = [k for k in ("memory", "pids") if k in self.bases] or \
            (["unified"] if "unified" in self.bases else [])
        self.shared: Path | None = None  # cgroup2 group of fork servers: under the network filter
        if "unified" in self.bases:
            try:
                self.shared = self.bases["unified"] / "shared"
                self.shared.mkdir(exist_ok=True)
            except OSError as exc:
                self.shared = None
                self.status["host_services_blocked"] = f"missing: cannot make a cgroup2 group ({exc.strerror})"
        if self.run_kinds:
            self.status.setdefault("run_kill", "active")
        if "unified" in self.bases and "host_services_blocked" not in self.status:
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
            self.status.setdefault("run_kill", "missing: no cgroup hierarchy")
            self.status.setdefault("host_services_blocked", "missing: no cgroup2 hierarchy")

    @property
    def usable(self) -> bool:
        return bool(self.run_kinds)

    @property
    def shared_procs(self) -> list[str]:
        """Where a fork server (or a build) goes: its children start under the network filter."""
        return [str(self.shared / "cgroup.procs")] if self.shared is not None else []

    def place(self, pid: int) -> None:
        """Put a process the executor started (a fork server) under the network filter."""
        for procs in self.shared_procs:
            with open(procs, "w") as fh:
                fh.write(str(pid))

    def take(self, memory_mb: int | None) -> Group:
        with self._lock:
            free = self._free.get(memory_mb)
            if free:
                return free.pop()  # emptied by release
            self._count += 1
            number = self._count
        return self._make(f"g{number}", memory_mb)

    def _make(self, name: str, memory_mb: int | None) -> Group:
        group = Group(name, memory_mb)
        for kind in self.run_kinds:
            path = self.bases[kind] / name
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
        """The group's process exited: kill what it left and keep the group for a later
        run — at once in the common case (nothing left), else once a thread has killed
        everything in it (a fork loop, dying processes), so no caller waits for that."""
        if group.kill():
            self._keep(group)
            return

        def drain() -> None:
            for _ in range(500):  # each round kills what is listed; the pids cap bounds new ones
                if group.kill():
                    self._keep(group)
                    return
                threading.Event().wait(0.01)
            log.warning("cgroup %s still has processes after its run: not reused", group.name)

        threading.Thread(target=drain, name="runyard-cgroup-drain", daemon=True).start()

    def _keep(self, group: Group) -> None:
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
            group.kill()  # empty already: kept only once emptied
        for base in self.bases.values():
            _remove_tree(base)


def _read(path: Path, default: str | None = "") -> Any:
    """A cgroup file's text (plain os calls: these are read on every run's path)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return default
    try:
        return os.read(fd, 1 << 16).decode()
    except OSError:
        return default
    finally:
        os.close(fd)


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

"""Execute one run in an isolated child process: the engine's public interface.

``Executor.submit`` hands a run to a *spare* child of the warm fork server
(``forkserver.py``), forked and rehearsed ahead of demand, whose socket the server passed
here; without a spare, it asks the server to fork one for the run. The child runs
``child.py``; with ``ExecRequest.python`` set, it execs the tool's virtualenv interpreter
instead, under the same isolation. A run of a tool whose imports were learned from its
earlier runs goes to a fork server that preloaded them, when one is ready
(``preloads.py``). The executor creates the child's pipes itself and
passes them with the request (SCM_RIGHTS), so the output, events and result flow
straight here, into a single I/O thread
(``ioloop.py``) shared by all runs. A run ends when the child has reported its result
and both pipes are at EOF (the child detaches from them just before exiting, so its
teardown is off the critical path), or else when the fork server reports the child's
exit (status + rusage from ``wait4``) and the pipes are drained.

Thread model: ``submit``, ``Execution.cancel``/``wait``/``add_done_callback`` may be
called from any thread. ``on_output``, ``on_event`` and done callbacks run on the
engine I/O thread and must return quickly (hand work to a queue or an event loop).
"""

from __future__ import annotations

import array
import asyncio
import collections
import dataclasses
import functools
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runyard.engine.cgroups import Group, RunGroups
from runyard.engine.child import recv_with_fds, reuse_key
from runyard.engine.environments import EnvironmentManager
from runyard.engine.forkserver import RECV_NOWAIT
from runyard.engine.ioloop import IOLoop, Timer
from runyard.engine.preloads import PreloadProfiles
from runyard.engine.reuse import ReusePool
from runyard.engine.workdirs import DirRecycler, remove_later

log = logging.getLogger(__name__)

Status = Literal["succeeded", "failed", "timed_out", "cancelled"]

KILL_GRACE_S = 0.5  # SIGTERM -> SIGKILL on cancel/timeout
DRAIN_GRACE_S = 0.5  # after exit, how long an escaped grandchild may keep the output pipe open
SERVER_START_TIMEOUT_S = 60.0
REUSE_IDLE_S = 60.0  # a reusable process idle this long retires
REUSE_LIMIT = 16  # at most this many reusable processes wait for runs (the least recently used retire)
PRELOAD_SERVERS = 4  # fork servers preloading what tools import (see preloads.py)
PRELOAD_IDLE_S = 600.0  # such a server unused this long stops
_READ_SIZE = 1 << 16
INLINE_REQUEST_MAX = 60 * 1024  # larger requests travel as a memfd, not in the socket packet
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Libraries that start threads as they are imported cannot be preloaded (a fork server must
# not hold threads when it forks): Arrow's jemalloc background thread and OpenBLAS's pool
# (numpy). Without them, pyarrow, numpy and DuckDB preload; a run forked from a server that
# preloaded numpy has single-threaded BLAS (a run that imports numpy itself is unaffected).
NO_IMPORT_THREADS = {"JE_ARROW_MALLOC_CONF": "background_thread:false", "OPENBLAS_NUM_THREADS": "1"}


@dataclass
class Limits:
    timeout_s: float | None = None  # wall clock; exceeded -> status "timed_out"
    memory_mb: int | None = None  # RLIMIT_AS (address space); exceeded -> error.type "memory_limit_exceeded"
    # RLIMIT_AS instead of memory_mb, when set: for runtimes that reserve far more address
    # space than they use (DuckDB's and Arrow's allocators); the run's memory cgroup still
    # caps what it really uses at memory_mb.
    address_space_mb: int | None = None
    cpu_s: int | None = None  # RLIMIT_CPU; exceeded -> error.type "cpu_limit_exceeded"
    max_open_files: int = 1024  # RLIMIT_NOFILE
    max_file_size_mb: int | None = 1024  # RLIMIT_FSIZE


@dataclass
class ExecRequest:
    run_id: str
    source_dir: Path  # dir holding the tool source; put first on sys.path
    module: str  # module to import, e.g. "tool" or "mypkg.main"
    entrypoint: str  # function name in that module; sync or async
    inputs: dict[str, Any]  # validated JSON values; file inputs are local path strings
    env: dict[str, str]  # extra env for the child (RUNYARD_* + declared secrets)
    workdir: Path  # the child's cwd and HOME; created by the child if missing
    output_dir: Path  # RUNYARD_OUTPUT_DIR (created by the child); artifacts are collected from here
    limits: Limits = field(default_factory=Limits)
    python: str | None = None  # a venv interpreter; None => fork from the warm fork server
    # Successive runs of the same tool version may share a process (module state persists;
    # see child.run_once for when a process is reused and when it retires). Under the
    # sandbox, such runs' dirs must share a parent of their own (the process may write
    # there, see SandboxConfig), else each run gets its own process.
    reuse_process: bool = False
    network: bool = True  # False: the run cannot open any socket (sandboxed runs only)
    # Files or dirs the run may also read (no more): the dataset parts a query reads, the
    # upload an ingestion parses. They may lie in the data dir, which runs otherwise never see.
    read_paths: list[str] = field(default_factory=list)
    # Script mode (not None): the module runs top to bottom with ``inputs`` as its globals
    # (``entrypoint`` unused) and the output is {name: value} of these globals.
    output_vars: list[str] | None = None


REUSE_DIR_PREFIX = "reuse-"  # the parent dir of a reused process's runs (one per tool version)


@dataclass
class SandboxConfig:
    """How runs are confined (see sandbox.py, cgroups.py, netfilter.py)."""

    mode: Literal["on", "strict", "off"] = "on"
    protected: list[str] = field(default_factory=list)  # never readable by a run (data dir, keys)
    max_processes: int = 256  # processes (and threads) per run
    local_ports: list[int] = field(default_factory=lambda: [53])  # host services runs may still reach
    host_filter: bool = True  # keep runs off this host's own addresses (netfilter.py)


@dataclass
class ExecResult:
    status: Status
    output: Any  # JSON value returned by the tool (None unless succeeded)
    error: dict[str, Any] | None  # {"type", "message", "traceback"}
    usage: dict[str, float]  # {"wall_ms", "cpu_s", "peak_rss_mb"}
    exit_code: int | None  # exit code, or -signal when killed by a signal; None if unknown
    # Nothing to clean up: the child removed its work, tmp and output dirs (all left
    # empty), or they were empty and the engine recycles them (see workdirs.py).
    dirs_removed: bool = False


OutputCallback = Callable[[bytes], None]
EventCallback = Callable[[dict[str, Any]], None]


def child_env(req: ExecRequest) -> dict[str, str]:
    """The run's complete environment: nothing from the server's own environment."""
    path = BASE_PATH if req.python is None else f"{Path(req.python).parent}:{BASE_PATH}"
    workdir = str(req.workdir)
    env = {
        "PATH": path,
        "HOME": workdir,
        "TMPDIR": os.path.join(workdir, ".tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(req.env)
    env.update(
        RUNYARD_RUN_ID=req.run_id,
        RUNYARD_OUTPUT_DIR=str(req.output_dir),
        RUNYARD_WORKDIR=workdir,
    )
    return env


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Execution:
    """A submitted run. Created by ``Executor.submit``."""

    def __init__(
        self, loop: IOLoop, req: ExecRequest, on_output: OutputCallback | None, on_event: EventCallback | None
    ) -> None:
        self.run_id = req.run_id
        self.pid: int | None = None
        self._loop = loop
        self._limits = req.limits
        self._on_output = on_output
        self._on_event = on_event
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._callbacks: list[Callable[[ExecResult], None]] = []
        self._result: ExecResult | None = None
        self._started = time.perf_counter()
        self._stop_reason: Literal["cancelled", "timed_out"] | None = None
        self._open_fds: set[int] = set()
        self._events_buf = bytearray()
        self._reported: dict[str, Any] | None = None  # the child's {"type": "result"} line
        self._exit: dict[str, Any] | None = None  # the fork server's exit report
        self._lost: str | None = None  # why the run ended without an exit report
        self._timers: list[Timer] = []
        # Set when the run's process may take the next run: called with whether it may.
        self._release: Callable[[bool], None] | None = None
        self._reuse_key: Any = None
        self._learn: Callable[[Any], None] | None = None  # gets the modules the run imported
        # Set when the run's dirs go back to the recycler once its process is gone.
        self._recycler: DirRecycler | None = None
        self._dirs = (str(req.workdir), str(req.output_dir))
        self._group: Group | None = None  # the cgroup its process is in (sandboxed runs)
        # A confined child cannot remove its own dirs (that is a write in their parent):
        # reported empty, they are removed here once its process is gone.
        self._remove_after_exit = False
        self._oom_killed = False  # the memory cap of its group was hit (known at its exit)

    # ------------------------------------------------------------------ public

    def cancel(self) -> None:
        """Stop the run: SIGTERM its process group, SIGKILL after a short grace."""
        self._terminate("cancelled")

    def wait(self, timeout: float | None = None) -> ExecResult:
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still running after {timeout} s")
        assert self._result is not None
        return self._result

    def done(self) -> bool:
        return self._done.is_set()

    def add_done_callback(self, fn: Callable[[ExecResult], None]) -> None:
        """Call ``fn(result)`` when the run ends (on the I/O thread; now if already ended)."""
        with self._lock:
            if self._result is None:
                self._callbacks.append(fn)
                return
            result = self._result
        fn(result)

    async def wait_async(self) -> ExecResult:
        """Await the result from asyncio without tying up a thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ExecResult] = loop.create_future()

        def resolve(result: ExecResult) -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(result))

        self.add_done_callback(resolve)
        return await future

    # ------------------------------------------------------------------ setup (submitting thread)

    def _watch(self, out_fd: int, events_fd: int) -> None:
        self._open_fds = {out_fd, events_fd}
        self._loop.add_reader(out_fd, lambda: self._read_output(out_fd))
        self._loop.add_reader(events_fd, lambda: self._read_events(events_fd))
        if self._limits.timeout_s is not None:
            timer = self._loop.call_at(
                time.monotonic() + self._limits.timeout_s, lambda: self._terminate("timed_out")
            )
            self._timers.append(timer)

    def _unwatch(self) -> None:
        """Undo ``_watch`` when the request could not be sent (it will be retried)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for fd in list(self._open_fds):
            self._loop.remove_reader(fd)
            os.close(fd)
        self._open_fds.clear()

    # ------------------------------------------------------------------ stopping

    def _terminate(self, reason: Literal["cancelled", "timed_out"]) -> None:
        with self._lock:
            if self._result is not None or self._exit is not None or self._stop_reason is not None:
                return
            self._stop_reason = reason
            pid = self.pid
        if pid is not None:
            _killpg(pid, signal.SIGTERM)
        # Before the fork server reported the pid, _started() kills on arrival.
        self._timers.append(self._loop.call_later(KILL_GRACE_S, self._kill))

    def _kill(self) -> None:
        with self._lock:
            pid = None if self._exit is not None else self.pid
        if pid is not None:
            _killpg(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ I/O thread

    def _on_started(self, pid: int) -> None:
        with self._lock:
            self.pid = pid
            stopping = self._stop_reason is not None
        if stopping:
            _killpg(pid, signal.SIGKILL)

    def _read_ready(self, fd: int) -> bytes | None:
        """What a readable pipe holds; None when there is nothing (or at EOF, after closing it)."""
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self._close_fd(fd)
            return None
        return data

    def _read_output(self, fd: int) -> None:
        data = self._read_ready(fd)
        if data is None:
            return
        if self._on_output is not None:
            try:
                self._on_output(data)
            except Exception:  # noqa: BLE001 - a caller bug must not lose the run
                log.exception("on_output callback failed for run %s", self.run_id)

    def _read_events(self, fd: int) -> None:
        data = self._read_ready(fd)
        if data is None:
            return
        buf = self._events_buf
        buf += data
        start = 0
        while (end := buf.find(b"\n", start)) != -1:
            self._handle_event_line(bytes(buf[start:end]))
            start = end + 1
        del buf[:start]

    def _handle_event_line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # something other than the runtime wrote to the events fd
        if not isinstance(event, dict):
            return
        if event.get("type") == "result":
            self._reported = event
            if self._learn is not None and "modules" in event:
                self._learn(event["modules"])
        elif self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # noqa: BLE001
                log.exception("on_event callback failed for run %s", self.run_id)

    def _close_fd(self, fd: int) -> None:
        if fd in self._open_fds:
            self._open_fds.discard(fd)
            self._loop.remove_reader(fd)
            os.close(fd)
        self._maybe_finish()

    def _on_exit(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._exit = report
            finished = self._result is not None
        if finished:  # completed on its reported result; this is just the late reap
            self._settle_dirs()
            return
        self._timers.append(self._loop.call_later(DRAIN_GRACE_S, self._force_finish))
        self._maybe_finish()

    def _on_lost(self, why: str) -> None:
        """The fork server died or failed to fork: end the run without an exit report."""
        with self._lock:
            if self._exit is None:
                self._lost = why  # no exit report will come (a finished run's dirs are removed, not kept)
            ended = self._exit is not None or self._result is not None
            pid = self.pid
        if ended:
            self._settle_dirs()
            return
        if pid is not None:
            _killpg(pid, signal.SIGKILL)
        self._timers.append(self._loop.call_later(DRAIN_GRACE_S, self._force_finish))
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        # The reported result plus EOF on both pipes is enough: the child detaches from
        # the pipes right before exiting, so its teardown is not on the run's critical
        # path. A grandchild still holding the output pipe delays EOF until the fork
        # server's exit handling kills the process group.
        if not self._open_fds and (
            self._reported is not None or self._exit is not None or self._lost is not None
        ):
            self._finish()

    def _force_finish(self) -> None:
        for fd in list(self._open_fds):
            self._open_fds.discard(fd)
            self._loop.remove_reader(fd)
            os.close(fd)
        if self._exit is not None or self._lost is not None:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._result is not None:
                return
            self._result = result = self._build_result()
            callbacks, self._callbacks = self._callbacks, []
        for timer in self._timers:
            timer.cancel()
        if self._exit is not None or self._lost is not None:
            self._settle_dirs()
        if self._release is not None:
            reported = self._reported or {}
            self._release(reported.get("reuse") is True and self._exit is None and self._lost is None
                          and self._stop_reason is None)
        self._done.set()
        for fn in callbacks:
            try:
                fn(result)
            except Exception:  # noqa: BLE001
                log.exception("done callback failed for run %s", self.run_id)

    def _settle_dirs(self) -> None:
        """The run's dirs, reported empty, once its process is gone (and its group killed,
        so nothing of it writes there any more): kept for a later run, or removed."""
        recycler, self._recycler = self._recycler, None
        ours, self._remove_after_exit = recycler is not None or self._remove_after_exit, False
        result = self._result
        if not ours or result is None or not result.dirs_removed:
            return  # not ours: the child removed them, or the worker cleans them up
        if recycler is not None and self._exit is not None:
            recycler.give_back(*self._dirs)
        else:
            remove_later(list(self._dirs))  # or the fork server is gone: its children may not be

    def _build_result(self) -> ExecResult:
        reported = self._reported
        # Prefer the fork server's wait4 figures; a run completed on its reported result
        # (before the exit was reaped) uses the child's own getrusage figures.
        exit_report = self._exit or (reported or {}).get("usage") or {}
        exit_code: int | None = None
        if self._exit is not None:
            exit_code = os.waitstatus_to_exitcode(self._exit["status"])
        elif reported is not None:
            exit_code = reported.get("exit_code")
        usage = {
            "wall_ms": (time.perf_counter() - self._started) * 1000.0,
            "cpu_s": float(exit_report.get("cpu_s", 0.0)),
            "peak_rss_mb": float(exit_report.get("maxrss_kb", 0)) / 1024.0,
        }

        def failed(
            type_: str, message: str, traceback: str | None = None, status: Status = "failed"
        ) -> ExecResult:
            error = {"type": type_, "message": message, "traceback": traceback}
            return ExecResult(status, None, error, usage, exit_code)

        if reported is not None:
            removed = reported.get("dirs_removed") is True or (
                (self._recycler is not None or self._remove_after_exit) and reported.get("dirs_empty") is True)
            if reported.get("status") == "succeeded":
                return ExecResult("succeeded", reported.get("output"), None, usage, exit_code, removed)
            error = reported.get("error") or {}
            result = failed(str(error.get("type")), str(error.get("message")), error.get("traceback"))
            result.dirs_removed = removed
            return result
        if self._stop_reason == "cancelled":
            return failed("cancelled", "the run was cancelled", status="cancelled")
        if self._stop_reason == "timed_out":
            return failed(
                "timeout", f"the run exceeded its timeout of {self._limits.timeout_s:g} s", status="timed_out"
            )
        if self._lost is not None:
            return failed("executor_error", self._lost)
        if exit_code is not None and exit_code < 0:
            sig = -exit_code
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            cpu_limit = self._limits.cpu_s
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_limit and usage["cpu_s"] >= cpu_limit):
                return failed("cpu_limit_exceeded", f"the run exceeded its CPU time limit of {cpu_limit} s")
            if sig == signal.SIGKILL and self._oom_killed:
                limit = f" of {self._limits.memory_mb} MB" if self._limits.memory_mb else ""
                return failed("memory_limit_exceeded", f"the run exceeded its memory limit{limit} and was killed")
            return failed("process_crashed", f"the run's process was killed by signal {name} ({sig})")
        return failed(
            "exit_code", f"the run's process exited with code {exit_code} without reporting a result"
        )


class _ForkServer:
    """One fork server process and its control socket."""

    def __init__(self, data_dir: Path, reuse_limit: int, preload: tuple[str, ...] = (),
                 python: str | None = None, sandbox: dict[str, Any] | None = None,
                 place: Callable[[int], None] | None = None) -> None:
        """``python``: a tool's virtualenv interpreter to run the server under (it runs the
        runtime by path there, see forkserver.FOREIGN), else runyard's own. ``place`` puts
        the new server's process in its cgroup before it forks anything."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.python = python
        if python is None:
            src_root = str(Path(__file__).resolve().parents[2])  # the dir holding the runyard package
            env = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "PYTHONPATH": src_root, **NO_IMPORT_THREADS}
            argv = [sys.executable, "-m", "runyard.engine.forkserver", str(child.fileno())]
        else:
            env = {"PATH": f"{Path(python).parent}:{BASE_PATH}", "LANG": "C.UTF-8", **NO_IMPORT_THREADS}
            # -S under the sandbox: the server confines itself, then loads site-packages.
            flags = ["-I", "-S"] if sandbox is not None and sandbox.get("venv") is not None else ["-I"]
            argv = [python, *flags, str(Path(__file__).with_name("forkserver.py")), str(child.fileno())]
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=[child.fileno()],
                env=env,  # a minimal env: forked children's /proc/self/environ shows only this
                cwd=str(data_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()  # e.g. a tool's interpreter that no longer exists
            raise
        finally:
            child.close()
        self.sock = parent
        if place is not None:
            try:
                place(self.proc.pid)
            except OSError:
                self.kill()
                raise
        self.runs: dict[int, Execution] = {}
        self.spares: collections.deque[tuple[int, socket.socket]] = collections.deque()  # (pid, its socket)
        self.spare_runs: dict[int, int] = {}  # pid of a spare given a run -> the run's id
        self.reusable = ReusePool(reuse_limit, REUSE_IDLE_S)  # spares that ran a run and wait for the next
        self.proc_groups: dict[int, Group] = {}  # pid of a run's process -> its cgroup, until it exits
        self.lock = threading.Lock()
        self.dead = False
        self.on_kill: Callable[[], None] | None = None  # frees what the server was given (its cgroup)
        parent.settimeout(SERVER_START_TIMEOUT_S)
        try:
            parent.send(json.dumps({"op": "preload", "modules": list(preload), "sandbox": sandbox}).encode())
            ready = parent.recv(65536)
        except (TimeoutError, OSError) as exc:
            self.kill()
            raise RuntimeError(f"the fork server did not start: {exc}") from exc
        finally:
            parent.settimeout(None)
        if not ready:
            code = self.proc.wait()
            raise RuntimeError(f"the fork server exited during start-up (exit code {code}); see its stderr")
        threads = json.loads(ready).get("threads", 1)
        if threads != 1:
            self.kill()
            raise RuntimeError(f"preloading left {threads} threads in the fork server (forking it is unsafe)")

    def take_spare(self) -> tuple[int, socket.socket] | None:
        with self.lock:
            return self.spares.popleft() if self.spares else None

    def drop_spares(self) -> None:
        with self.lock:
            spares, self.spares = list(self.spares), collections.deque()
        for _pid, sock in spares:
            sock.close()  # an orphaned spare reads EOF and exits
        self.reusable.clear()

    def kill(self) -> None:
        self.dead = True
        on_kill, self.on_kill = self.on_kill, None
        self.drop_spares()
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if on_kill is not None:
                on_kill()


class Executor:
    """Runs tools in sandboxed child processes. Thread-safe; see the module docstring."""

    def __init__(self, data_dir: Path, *, uv_offline: bool = False, reuse_limit: int = REUSE_LIMIT,
                 preload_servers: int = PRELOAD_SERVERS, preload_idle_s: float = PRELOAD_IDLE_S,
                 sandbox: SandboxConfig | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.sandbox = sandbox if sandbox is not None else SandboxConfig(protected=[str(self.data_dir)])
        self.groups: RunGroups | None = None
        self.protections: dict[str, str] = {}
        if self.sandbox.mode != "off":
            self._start_sandbox()
        self.reuse_limit = reuse_limit
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offline = uv_offline or os.environ.get("RUNYARD_UV_OFFLINE") == "1"
        self.environments = EnvironmentManager(
            self.data_dir, offline=offline, confine=self._confine_build if self.sandbox.mode != "off" else None)
        self._loop = IOLoop()
        self._loop_started = False
        self._server: _ForkServer | None = None
        self._start_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self.recycler: DirRecycler | None = None
        try:
            self.recycler = DirRecycler(self.data_dir / "work")
        except OSError as exc:  # only an optimisation: runs then make and remove their dirs
            log.warning("run dirs will not be recycled: %s", exc)
        self.preloads: PreloadProfiles[_ForkServer] = PreloadProfiles(
            self._start_preload_server, self._stop_server, busy=lambda server: bool(server.runs),
            limit=preload_servers, idle_s=preload_idle_s)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the I/O thread and the fork server (idempotent; also restarts a dead server)."""
        self._ensure_server()

    def close(self) -> None:
        """Kill the fork server and every live run; pending runs end failed."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            server, self._server = self._server, None
        servers = ([server] if server is not None else []) + self.preloads.close()
        runs = []
        for server in servers:
            with server.lock:
                runs += server.runs.values()
                server.runs.clear()
        for execution in runs:
            self._loop_call(lambda e=execution: e._on_lost("the executor was closed"))
        for server in servers:
            self._loop.remove_reader(server.sock.fileno())
            server.kill()  # closing the socket makes the server kill its children and exit
        deadline = time.monotonic() + 2 * DRAIN_GRACE_S + 1
        for execution in runs:
            execution._done.wait(max(0.0, deadline - time.monotonic()))
        if self.recycler is not None:
            self.recycler.close()
        if self.groups is not None:
            self.groups.close()
        if self._loop_started:
            self._loop.stop()

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_sandbox(self) -> None:
        from runyard.engine.protections import check

        config = self.sandbox
        protected = list(dict.fromkeys([str(self.data_dir), *config.protected]))
        config.protected = protected
        try:
            self.groups = RunGroups(max_processes=config.max_processes, allowed_ports=config.local_ports,
                                    network_filter=config.host_filter)
        except OSError as exc:
            log.warning("run cgroups unavailable: %s", exc)
        self.protections = check(self.groups, protected)
        missing = {name: why for name, why in self.protections.items() if not why.startswith("active")}
        refusal = None
        if missing and config.mode == "strict":
            refusal = "RUNYARD_SANDBOX=strict, but these protections are missing: " + "; ".join(
                f"{name} ({why})" for name, why in missing.items())
        elif os.geteuid() == 0 and "filesystem" in missing:
            # Runs keep uid 0 (with no capability): only Landlock stands between them and
            # every root-owned file, the data dir's included.
            refusal = ("runs would execute as root without a filesystem sandbox (Landlock: "
                       f"{missing['filesystem']}); run runyard as an unprivileged user, use a kernel "
                       "with Landlock, or set RUNYARD_SANDBOX=off to run trusted code only")
        if refusal is not None:
            if self.groups is not None:
                self.groups.close()
            raise RuntimeError(refusal)
        for name, why in missing.items():
            log.warning("SANDBOX PROTECTION NOT ENFORCED: %s: %s", name, why)

    def _confine_build(self, env_dir: Path, requirements: list[str]) -> tuple[list[str], Callable[[], None]]:
        """An environment build runs its packages' build scripts: confined like a run, it
        may write only its environment's dir and read only the runtime and the local paths
        its requirements name (never the data dir), in a cgroup of its own."""
        from runyard.engine.sandbox import confined_command

        group = self.groups.take(None) if self.groups is not None and self.groups.usable else None
        local = []
        for requirement in requirements:
            path = requirement.removeprefix("file://").removeprefix("file:")
            if path.startswith(("/", "./")):
                local.append(str((env_dir / path).resolve()) if path.startswith("./") else path)
        shared = self.groups.shared_procs if self.groups is not None else []
        policy = {"protected": self.sandbox.protected, "cgroups": [*(group.procs if group else []), *shared],
                  "read": local, "write": [str(env_dir)]}

        def release() -> None:
            if group is not None and self.groups is not None:
                self.groups.release(group)  # whatever a build script left running dies here

        return confined_command(policy, []), release  # the prefix: argv follows its "--"

    def _place_server(self, pid: int) -> None:
        """A fork server's children start under the host-services filter (its cgroup's)."""
        if self.groups is not None:
            self.groups.place(pid)

    def _server_sandbox(self, python: str | None) -> tuple[dict[str, Any] | None, Callable[[], None]]:
        """What a fork server needs to know to confine its runs (None: no sandbox), and what
        to call when it stops."""
        if self.sandbox.mode == "off":
            return None, lambda: None
        config: dict[str, Any] = {"protected": self.sandbox.protected}
        if python is None:
            return config, lambda: None
        # Started with -S, it runs none of its environment's code (site-packages' .pth
        # files, third-party imports): its runs do, confined (see forkserver.main).
        config["venv"] = str(Path(python).parent.parent)
        config["read"] = [config["venv"]]
        return config, lambda: None

    def _sandbox_policy(self, req: ExecRequest, execution: Execution) -> dict[str, Any]:
        policy: dict[str, Any] = {"network": req.network}
        if self.groups is not None and self.groups.usable:
            group = self.groups.take(req.limits.memory_mb)
            execution._group = group
            policy["cgroups"] = group.procs
        if req.reuse_process:
            policy["write_root"] = str(req.workdir.parent)  # checked by submit: one version's dir
        read = [str(Path(req.python).parent.parent)] if req.python else []  # the tool's virtualenv
        read += req.read_paths
        if execution._group is not None:
            # Its own groups' limits, which runtimes such as DuckDB read to size themselves.
            read += [str(Path(procs).parent) for procs in execution._group.procs]
        if read:
            policy["read"] = read
        return policy

    def _retire_idle_later(self, server: _ForkServer) -> None:
        def retire() -> None:
            if not server.dead:
                server.reusable.retire_idle()
                self._retire_idle_later(server)

        self._loop.call_later(REUSE_IDLE_S / 4, retire)

    def _start_preload_server(self, python: str | None, modules: tuple[str, ...]) -> _ForkServer:
        """A fork server under ``python`` preloading ``modules`` (blocking; called by ``PreloadProfiles``)."""
        self._ensure_server()  # the I/O loop runs, and the executor is not closed
        config, release = self._server_sandbox(python)
        try:
            server = _ForkServer(self.data_dir, self.reuse_limit, preload=modules, python=python, sandbox=config,
                                 place=self._place_server)
        except BaseException:
            release()
            raise
        server.on_kill = release
        self._loop.add_reader(server.sock.fileno(), lambda: self._read_server(server))
        self._retire_idle_later(server)
        return server

    def _stop_server(self, server: _ForkServer) -> None:
        """Stop a fork server with no runs in flight (a preloading one, idle or unwanted)."""
        self._loop.remove_reader(server.sock.fileno())
        server.kill()

    def _retire_idle_preloads_later(self) -> None:
        def retire() -> None:
            if not self._closed:
                # kill() waits for the process: not on the I/O thread
                threading.Thread(target=self.preloads.retire_idle, daemon=True).start()
                self._retire_idle_preloads_later()

        self._loop.call_later(max(1.0, self.preloads.idle_s / 4), retire)

    def _loop_call(self, fn: Callable[[], None]) -> None:
        self._loop.call_at(0.0, fn)

    def _ensure_server(self) -> _ForkServer:
        server = self._server
        if server is not None and not server.dead:
            return server
        with self._start_lock:
            if self._closed:
                raise RuntimeError("the executor is closed")
            if not self._loop_started:
                self._loop.start()
                self._loop_started = True
                self._retire_idle_preloads_later()
            server = self._server
            if server is None or server.dead:
                server = _ForkServer(self.data_dir, self.reuse_limit, sandbox=self._server_sandbox(None)[0],
                                     place=self._place_server)
                self._loop.add_reader(server.sock.fileno(), lambda s=server: self._read_server(s))
                self._server = server
                self._retire_idle_later(server)
            return server

    # ------------------------------------------------------------------ submit

    def submit(
        self,
        req: ExecRequest,
        on_output: OutputCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> Execution:
        """Start executing ``req``; returns at once. Thread-safe."""
        if self._closed:
            raise RuntimeError("the executor is closed")
        if (req.reuse_process and self.sandbox.mode != "off"
                and not req.workdir.parent.name.startswith(REUSE_DIR_PREFIX)):
            # A confined process may write only where all its runs live: a dir of their own.
            req = dataclasses.replace(req, reuse_process=False)
        spec = {
            "mode": "run",
            "run_id": req.run_id,
            "source_dir": str(req.source_dir),
            "module": req.module,
            "entrypoint": req.entrypoint,
            "inputs": req.inputs,
            "env": child_env(req),
            "workdir": str(req.workdir),
            "output_dir": str(req.output_dir),
            "limits": {
                "memory_mb": req.limits.memory_mb,
                "address_space_mb": req.limits.address_space_mb,
                "cpu_s": req.limits.cpu_s,
                "max_open_files": req.limits.max_open_files,
                "max_file_size_mb": req.limits.max_file_size_mb,
            },
            "python": req.python,
            "reuse": req.reuse_process,
        }
        if req.output_vars is not None:
            spec["script_outputs"] = list(req.output_vars)
        execution = Execution(self._loop, req, on_output, on_event)
        if self.sandbox.mode != "off":
            spec["sandbox"] = self._sandbox_policy(req, execution)
            execution._remove_after_exit = not req.reuse_process
        # A reused process has its imports after its first run; a server of their own would
        # only split the runs from the process that holds their state.
        preload_key = None if req.reuse_process else (spec["source_dir"], req.module)
        if preload_key is not None:
            execution._learn = functools.partial(self.preloads.learn, preload_key, python=req.python)
        recycler = self.recycler
        if recycler is not None and not req.reuse_process and recycler.covers(spec["workdir"], spec["output_dir"]):
            # Its dirs, left empty, are kept for a later run (a reused process's run
            # ends while its process lives on: those the child removes itself).
            spec["recycle"] = True
            spec["recycled"] = recycler.take()
            execution._recycler = recycler
        key = reuse_key(spec) if req.reuse_process else None
        preloaded = self.preloads.server_for(preload_key, req.python) if preload_key is not None else None
        if preloaded is not None:
            # A server under the tool's own interpreter forks the run there: no exec.
            own = spec if preloaded.python is None else {**spec, "python": None}
            if self._send(preloaded, execution, json.dumps(own, separators=(",", ":")).encode(), key):
                return execution
            preloaded.dead = True  # it died before we noticed: the base server takes the run
        payload = json.dumps(spec, separators=(",", ":")).encode()
        for attempt in (1, 2):
            server = self._ensure_server()
            if self._send(server, execution, payload, key):
                return execution
            if attempt == 1:
                server.dead = True  # it died before we noticed: restart once and retry
        if execution._group is not None and self.groups is not None:
            self.groups.release(execution._group)  # no process of the run was started
        execution._on_lost("could not reach the fork server")
        return execution

    def _send(self, server: _ForkServer, execution: Execution, payload: bytes, key: Any) -> bool:
        """Send the run to a process: one kept from a run of the same version (``key``, when
        the tool allows reuse), else a spare, else one the fork server forks for it."""
        out_r, out_w = os.pipe()
        ev_r, ev_w = os.pipe()
        fds = [out_w, ev_w]
        ident = next(self._ids)
        header = json.dumps({"op": "run", "id": ident, "reuse": key is not None}).encode() + b"\n"
        if len(payload) <= INLINE_REQUEST_MAX:
            message = header + payload
        else:  # too big for one socket packet: pass it as a memfd
            message = header
            request_fd = os.memfd_create("runyard-request", os.MFD_CLOEXEC)
            fds.append(request_fd)
            view = memoryview(payload)
            while view:
                view = view[os.write(request_fd, view) :]
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        try:
            os.set_blocking(out_r, False)
            os.set_blocking(ev_r, False)
            with server.lock:
                server.runs[ident] = execution
            # Watch the pipes before the request leaves: a fast child may finish (and its
            # exit be reported) before sendmsg even returns here.
            execution._watch(out_r, ev_r)
            while (taken := self._take_process(server, key)) is not None:
                pid, sock, fresh = taken
                with server.lock:
                    server.spare_runs[pid] = ident  # before the request: its exit may come first
                    self._bind_group(server, execution, pid)
                try:
                    sock.sendmsg([message], ancillary, socket.MSG_NOSIGNAL)
                except OSError:  # that process died; the server reports (and replaces) it
                    with server.lock:
                        server.spare_runs.pop(pid, None)
                        if server.proc_groups.get(pid) is execution._group:
                            server.proc_groups.pop(pid, None)
                    sock.close()
                    continue
                execution._on_started(pid)
                if key is None:
                    sock.close()
                else:
                    self._keep_for_reuse(server, execution, ident, key, pid, sock)
                if fresh:
                    self._tell(server, {"op": "took", "pid": pid})  # so it forks a replacement
                return True
            execution._reuse_key = key  # the fork server forks it a process of its own
            try:
                server.sock.sendmsg([message], ancillary, socket.MSG_NOSIGNAL)
            except OSError:
                with server.lock:
                    server.runs.pop(ident, None)
                execution._unwatch()
                return False
            return True
        finally:
            # The child holds the write ends now; ours must go so that EOF arrives when
            # the child and its descendants are gone.
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _take_process(server: _ForkServer, key: Any) -> tuple[int, socket.socket, bool] | None:
        """A process for a run: (pid, its socket, whether it is a fresh spare)."""
        if key is not None and (kept := server.reusable.take(key)) is not None:
            return (*kept, False)
        spare = server.take_spare()
        return None if spare is None else (*spare, True)

    def _keep_for_reuse(self, server: _ForkServer, execution: Execution, ident: int, key: Any, pid: int,
                        sock: socket.socket) -> None:
        """Offer the run's process for the next run of ``key`` once this run is done with it."""
        release = functools.partial(self._release, server, ident, key, pid, sock)
        with execution._lock:
            if execution._result is None:
                execution._release = release
                return
        release(False)  # the run ended before its process was known here: let it go

    @staticmethod
    def _release(server: _ForkServer, ident: int, key: Any, pid: int, sock: socket.socket, reuse: bool) -> None:
        """A run's process is done with it: keep it for the next run of ``key``, or let it go."""
        if not reuse or server.dead:
            sock.close()  # it exits by itself (or on EOF, when it was waiting)
            return
        with server.lock:
            # It takes more runs: its exit, whenever it comes, is no longer this run's.
            server.spare_runs.pop(pid, None)
            server.runs.pop(ident, None)
        server.reusable.put(key, pid, sock)

    @staticmethod
    def _tell(server: _ForkServer, msg: dict[str, Any]) -> None:
        try:
            server.sock.send(json.dumps(msg, separators=(",", ":")).encode(), socket.MSG_NOSIGNAL)
        except OSError:
            pass  # a dead server is noticed (and its runs failed) by the I/O thread

    # ------------------------------------------------------------------ server messages (I/O thread)

    def _read_server(self, server: _ForkServer) -> None:
        while True:
            try:
                data, fds = recv_with_fds(server.sock, RECV_NOWAIT)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                self._server_lost(server)
                return
            msg = json.loads(data)
            op = msg.get("op")
            if op == "exit":
                self._process_exited(server, msg)
            if op == "spare":
                self._add_spare(server, msg["pid"], fds)
                continue
            kept = socket.socket(fileno=fds.pop()) if op == "started" and len(fds) == 1 else None
            for fd in fds:
                os.close(fd)
            with server.lock:
                ident = msg.get("id")
                if ident is None and "pid" in msg:  # a spare's exit: the run it had, if any
                    ident = server.spare_runs.pop(msg["pid"], None)
                    if ident is None:  # it died before it was given a (next) run
                        for spare in [s for s in server.spares if s[0] == msg["pid"]]:
                            server.spares.remove(spare)
                            spare[1].close()
                        server.reusable.discard(msg["pid"])
                execution = server.runs.get(ident if ident is not None else -1)
                if op in ("exit", "failed"):
                    server.runs.pop(ident, None)
            if execution is None:
                if kept is not None:
                    kept.close()
                continue
            if op == "started":
                with server.lock:
                    self._bind_group(server, execution, msg["pid"])
                if kept is not None:  # a process that may take more runs: its exit comes by pid
                    with server.lock:
                        server.spare_runs[msg["pid"]] = msg["id"]
                    self._keep_for_reuse(server, execution, msg["id"], execution._reuse_key, msg["pid"], kept)
                execution._on_started(msg["pid"])
            elif op == "exit":
                execution._on_exit(msg)
            elif op == "failed":
                if execution._group is not None and self.groups is not None:
                    self.groups.release(execution._group)  # no process was forked for it
                execution._on_lost(f"the fork server could not start the run: {msg.get('message')}")

    def _bind_group(self, server: _ForkServer, execution: Execution, pid: int) -> None:
        """Record the cgroup of the process that runs ``execution`` (under ``server.lock``).
        A reused process has its group since its first run: the run's own goes back."""
        held = server.proc_groups.get(pid)
        if held is not None and held is not execution._group:
            if execution._group is not None and self.groups is not None:
                self.groups.give_back(execution._group)
            execution._group = held
        elif execution._group is not None:
            server.proc_groups[pid] = execution._group

    def _process_exited(self, server: _ForkServer, msg: dict[str, Any]) -> None:
        """A run's process exited: note whether its memory cap was hit, then kill what it
        left in its cgroup and free the group."""
        with server.lock:
            pid = msg.get("pid")
            if pid is None:
                execution = server.runs.get(msg.get("id", -1))
                pid = execution.pid if execution is not None else None
            else:
                ident = server.spare_runs.get(pid)
                execution = server.runs.get(ident) if ident is not None else None
            group = server.proc_groups.pop(pid, None) if pid is not None else None
        if group is None or self.groups is None:
            return
        hit = group.memory_cap_hit()
        if execution is not None and execution._group is group:
            execution._oom_killed = hit
        self.groups.release(group)

    @staticmethod
    def _add_spare(server: _ForkServer, pid: int, fds: list[int]) -> None:
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return
        with server.lock:
            server.spares.append((pid, socket.socket(fileno=fds[0])))

    def _server_lost(self, server: _ForkServer) -> None:
        self._loop.remove_reader(server.sock.fileno())
        server.dead = True
        server.sock.close()
        code = server.proc.poll()
        if code is None:
            try:
                code = server.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                code = None
        server.drop_spares()
        with server.lock:
            runs = list(server.runs.values())
            server.runs.clear()
            server.spare_runs.clear()
            groups, server.proc_groups = list(server.proc_groups.values()), {}
        if self.groups is not None:
            for group in groups:
                self.groups.release(group)  # the server's death killed its children; not a daemon they left
        why = f"the fork server died (exit status {code}) while the run was in progress"
        for execution in runs:
            execution._on_lost(why)

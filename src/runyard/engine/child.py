"""The child runtime: prepares the run's process, imports the tool and calls it.

It runs in two ways:

* inside a fork of the warm fork server (``runyard.engine.forkserver``), which calls
  ``prepare`` and ``run`` directly after wiring the child's file descriptors;
* as a script under a tool's own virtualenv interpreter, where runyard is not
  installed: ``<venv>/bin/python -I -u child.py --events-fd N --request-fd M``.

Hence this module is stdlib-only at import time and never imports runyard at top level.
It also imports at top level only what every run needs (``json`` brings ``re``, ``enum``
and ``types``): the lean fork server forks from an interpreter holding little more than
this module, and anything else (``asyncio``, ``inspect``, ``typing``, ``traceback``...)
is imported where a run needs it. Values of types from modules nobody imported cannot
exist, so the output conversion looks those types up in ``sys.modules``.

Protocol: the request (a JSON object, see ``executor.py``) is read from the request
fd; progress/trace/artifact events and finally exactly one ``{"type": "result"}`` line
are written as JSON lines to the events fd; stdout/stderr go to the output pipe. The
process exits with 0 on success, 1 on failure, or the code the tool passed to
``sys.exit``.
"""

from __future__ import annotations

import _signal
import enum
import importlib
import io
import json
import math
import os
import resource
import signal
import sys
import types
from collections.abc import Mapping

TYPE_CHECKING = False  # typing itself is not imported at run time (see above)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

_THIS_FILE = os.path.abspath(__file__)
_ENGINE_DIR = os.path.dirname(_THIS_FILE)
_MB = 1024 * 1024
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08


class ToolError(Exception):
    """A failure the runtime reports with an explicit error type (not a user exception)."""

    def __init__(self, type_: str, message: str, tb: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.traceback = tb
        self.exit_code = exit_code


# --------------------------------------------------------------------------- process setup


def apply_limits(limits: Mapping[str, Any], *, reused: bool = False) -> None:
    """Set rlimits; hard = soft so the tool cannot raise them back.

    A reused process (``reused``) counts CPU time over all its runs, and a hard limit can
    never be raised again: its CPU backstop is a soft limit this run's budget above the
    CPU already used (the wall-clock timeout stays the real limit).
    """

    def clamp(kind: int, soft: int, hard: int | None = None) -> None:
        _cur_soft, cur_hard = resource.getrlimit(kind)
        hard = soft if hard is None else hard
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(kind, (soft, hard))

    if limits.get("address_space_mb") or limits.get("memory_mb"):
        clamp(resource.RLIMIT_AS, int(limits.get("address_space_mb") or limits["memory_mb"]) * _MB)
    if limits.get("cpu_s") and reused:
        used = math.ceil(_cpu_seconds())
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = used + int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    elif limits.get("cpu_s"):
        # soft limit sends SIGXCPU; the hard limit one second later is a SIGKILL backstop.
        cpu = int(limits["cpu_s"])
        clamp(resource.RLIMIT_CPU, cpu, cpu + 1)
    if limits.get("max_open_files"):
        clamp(resource.RLIMIT_NOFILE, int(limits["max_open_files"]))
    if limits.get("max_file_size_mb"):
        clamp(resource.RLIMIT_FSIZE, int(limits["max_file_size_mb"]) * _MB)


def prepare(spec: Mapping[str, Any]) -> None:
    """Give the process its run's cwd, environment and limits (before any user code)."""
    workdir = spec["workdir"]
    env = dict(spec["env"])
    tmpdir = env.get("TMPDIR")
    # The run's dirs are made here, in the child, so the server's thread never waits
    # on the filesystem for them: an empty set an earlier run left (see
    # engine/workdirs.py), else new ones (and run() removes them again when left empty,
    # unless the engine recycles them).
    recycled = spec.get("recycled") or _take_held()
    if not (recycled and _take_recycled(recycled, workdir, tmpdir, spec["output_dir"])):
        _mkdir(workdir)
        if tmpdir:
            _mkdir(tmpdir)
        _mkdir(spec["output_dir"])
    os.chdir(workdir)
    _set_environ(env)
    apply_limits(spec.get("limits") or {}, reused=bool(spec.get("reuse")))
    if spec.get("sandbox") is not None:
        _confine(spec)


# --------------------------------------------------------------------------- sandbox

_sandbox_static: Any = None  # sandbox.Static of this fork server (None: no sandbox)
_confined: str | None = None  # where this process may write, once confined


def open_sandbox(config: Mapping[str, Any]) -> None:
    """In a fork server: open the paths every run may read (``config``: what to protect)."""
    global _sandbox_static
    sandbox = _load_sibling("sandbox")
    _sandbox_static = sandbox.Static.open(config.get("protected") or [], config.get("read") or [])


_venv_site: list[str] = []  # the site-packages whose .pth files each run processes (a venv server's)


def use_venv(root: str) -> None:
    """In a fork server started with -S under a venv's interpreter: the venv's site-packages
    on sys.path, as ``site`` would put them, without running their ``.pth`` files."""
    sys.prefix = sys.exec_prefix = root
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for lib in ("lib", "lib64"):
        path = os.path.join(root, lib, version, "site-packages")
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
            if any(name.endswith(".pth") for name in os.listdir(path)):
                _venv_site.append(path)


def from_venv(module: str) -> bool:
    """Whether a module would be loaded from the venv (found without importing anything)."""
    import importlib.machinery

    top = module.partition(".")[0]
    if top in sys.builtin_module_names:
        return False
    found = importlib.machinery.PathFinder.find_spec(top)
    origin = getattr(found, "origin", None) or next(iter(getattr(found, "submodule_search_locations", None) or []), "")
    return found is None or any(str(origin).startswith(os.path.dirname(site) + "/") for site in sys.path
                                if site.endswith("site-packages"))


def _process_pth() -> None:
    """A run of a venv server: its environment's .pth files (their code runs confined)."""
    import site

    for path in _venv_site:
        site.addsitedir(path)


def harden_server() -> None:
    """In a fork server: give up, once, what every run gives up (see sandbox.harden_server)."""
    _load_sibling("sandbox").harden_server(_sandbox_static)


def ruleset_for_child() -> int | None:
    """In a fork server, before a fork: the child's Landlock ruleset, static rules added."""
    if _sandbox_static is None:
        return None
    try:
        return _load_sibling("sandbox").ruleset_for_child(_sandbox_static)
    except OSError:
        return None  # the run builds it itself (and fails if it cannot)


def take_ruleset(ruleset: int | None) -> None:
    if _sandbox_static is not None:
        _load_sibling("sandbox").take_ruleset(_sandbox_static, ruleset)


def confine_ahead() -> None:
    """In a spare, before its run: what of its confinement does not depend on the run."""
    if _sandbox_static is not None:
        try:
            _load_sibling("sandbox").ahead(_sandbox_static)
        except OSError:
            pass  # confine adds the rule itself (and fails the run if it cannot)


def confined_root() -> str | None:
    return _confined


def _confine(spec: Mapping[str, Any]) -> None:
    """Confine this process to its run (``sandbox.confine``); a reused process is confined
    by its first run, to the dir all runs of its tool version live in."""
    global _confined
    policy = spec["sandbox"]
    root = policy.get("write_root") or spec["workdir"]
    if _confined is not None:
        if _confined != root:
            raise ToolError("sandbox_error", "a confined process was sent a run outside its dir")
        return
    if _sandbox_static is None:  # not forked from a fork server (an inspection): open them here
        open_sandbox(policy)
    _load_sibling("sandbox").confine(policy, _sandbox_static, spec["workdir"], spec["output_dir"],
                                     spec.get("source_dir"))
    _confined = root
    if _venv_site:
        _process_pth()


# A set of run dirs kept for a later run (engine/workdirs.py) is a dir holding the run's
# ``.tmp`` and its output dir as ``.out``. Its layout and names are here, where both the
# engine's pool and a reused process (which keeps its last run's set for its next run,
# under ``pool_name(pid, "held")``) use them: this module cannot import runyard.
POOL_PREFIX = ".recycled-"
_held: str | None = None
_dir_mode: int | None = None  # what mkdir gives under the umask the process started with


def pool_name(pid: int, tag: str) -> str:
    """``.recycled-<pid>-<tag>-<host>``: an executor's pool, or a reused process's held set.
    The host, because a data dir may be shared between machines and only this host can
    tell whether ``pid`` is still alive."""
    return f"{POOL_PREFIX}{pid}-{tag}-{os.uname().nodename}"


def stash_dirs(workdir: str, output_dir: str, unit: str, mode: int, *, known_empty: bool = False) -> bool:
    """Move a run's dirs into ``unit`` if they are exactly as made (real directories of
    ``mode``, nothing in them but the work dir's ``.tmp``); False (nothing kept) otherwise.
    ``known_empty``: the caller has just looked inside them (and nothing can have written
    there since), so only their kind and mode are checked."""
    import stat

    tmpdir = os.path.join(workdir, ".tmp")
    try:
        for path, allowed in ((tmpdir, ()), (output_dir, ()), (workdir, (".tmp",))):
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
                return False
            if known_empty:
                continue
            with os.scandir(path) as entries:
                if any(entry.name not in allowed for entry in entries):
                    return False
        os.rename(output_dir, os.path.join(workdir, ".out"))
        os.rename(workdir, unit)
    except OSError:
        return False
    return True


def _take_held() -> str | None:
    global _held
    held, _held = _held, None
    return held


def _hold_dirs(spec: Mapping[str, Any]) -> bool:
    """Keep a run's empty dirs for this process's next run: False (nothing moved) if they
    are not exactly as made (a symlink, another mode)."""
    global _held
    workdir = spec["workdir"]
    if spec["env"].get("TMPDIR") != os.path.join(workdir, ".tmp") or _dir_mode is None:
        return False
    held = os.path.join(os.path.dirname(workdir), pool_name(os.getpid(), "held"))
    # run_once found them empty, and the run left nothing running that could write there.
    if not stash_dirs(workdir, spec["output_dir"], held, _dir_mode, known_empty=True):
        return False
    _held = held
    return True


def _remove_held() -> None:
    held = _take_held()
    if held is not None:
        _remove_empty([os.path.join(held, ".tmp"), os.path.join(held, ".out"), held])


def _take_recycled(unit: str, workdir: str, tmpdir: str | None, output_dir: str) -> bool:
    """Rename a recycled set (``<unit>/.tmp``, ``<unit>/.out``) into the run's places:
    two renames instead of three ``mkdir``. False (the set removed) when it does not fit."""
    try:
        if tmpdir != os.path.join(workdir, ".tmp"):
            raise OSError("the run's TMPDIR is not in its work dir")
        os.rename(unit, workdir)  # fails when the work dir exists already (input files)
    except OSError:
        _remove_trees([unit])
        return False
    try:
        os.rename(os.path.join(workdir, ".out"), output_dir)
    except OSError:
        _remove_trees([os.path.join(workdir, ".out")])
        _mkdir(output_dir)
    return True


def _set_environ(env: Mapping[str, str]) -> None:
    """Make ``os.environ`` exactly ``env``, at the C level too (``unsetenv``/``putenv``),
    so libraries calling getenv() see the run's environment and nothing else. Only what
    differs is changed: a reused process mostly gets the environment it had."""
    environ = os.environ
    for name in [name for name in environ if name not in env]:
        del environ[name]
    for name, value in env.items():
        if environ.get(name) != value:
            environ[name] = value


def _mkdir(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` at the cost of one syscall when the parent exists."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


# --------------------------------------------------------------------------- running a tool


def run(spec: Mapping[str, Any], events_fd: int, *, forked: bool) -> NoReturn:
    """Run the tool described by ``spec``, report the result on ``events_fd`` and exit.

    Forked, the process has the fork server's run stdio (see ``fresh_stdio``); under a
    tool's own interpreter, ``-u`` makes stdio unbuffered.
    """
    run_once(spec, events_fd, forked=forked, reusable=False)
    raise AssertionError("unreachable")  # run_once exits unless the process may be reused


def run_once(spec: Mapping[str, Any], events_fd: int, *, forked: bool, reusable: bool) -> None:
    """Run the tool once and report the result; returns only if this process takes another run.

    With ``reusable`` (the tool allows it: ``reuse_process``) the process stays for the
    next run of the same version when this one succeeded and left nothing running (see
    ``_left_nothing_running``: threads, processes, timers, hoarded files, run count).
    The result says so (``"reuse": true``) so the engine knows to send it the next run.
    """
    sys.dont_write_bytecode = True  # source dirs may be shared or read-only
    sys.argv = [spec.get("module", "tool")]
    ctx = _load_context(forked)
    ctx._bind(events_fd)
    if reusable:
        _begin_reused_run()
    cpu_before = _cpu_seconds() if reusable else 0.0
    # A small reserve released on MemoryError so reporting the error itself can allocate.
    reserve: bytearray | None = _take_memory_reserve()
    exit_code = 1
    try:
        if spec.get("mode") == "inspect":
            output = _inspect(spec)
        elif spec.get("script_outputs") is not None:
            output = _run_script(spec)
        else:
            output = _call_tool(spec)
        result: dict[str, Any] = {"type": "result", "status": "succeeded", "output": output}
        exit_code = 0
    except ToolError as exc:
        result = _failure(exc.type, exc.message, exc.traceback)
        exit_code = exc.exit_code
    except MemoryError:
        reserve = None
        result = _failure("memory_limit_exceeded", _memory_message(spec))
    except BaseException as exc:  # noqa: BLE001 - anything else is still a clean failure report
        result = _failure(type(exc).__name__, str(exc), _user_traceback(exc))
    del reserve
    reuse = reusable and exit_code == 0 and _left_nothing_running()
    if reuse:
        _flush_output()  # atexit handlers run when the process retires, not after every run
    else:
        _wind_down()
    result["exit_code"] = exit_code
    # Left empty (the common case), the run's dirs are removed after the result is out:
    # on ext4 each rmdir blocks for a journal write, which need not delay the run's end.
    dirs = [path for path in (spec["env"].get("TMPDIR"), spec["output_dir"], spec["workdir"]) if path]
    remove_later = _all_empty(dirs)
    if spec.get("recycle") or (remove_later and _confined == spec["workdir"]):
        # The engine keeps them for a later run once this process is gone, or removes them
        # (a process confined to its dirs cannot remove them: that writes their parent).
        result["dirs_empty"], remove_later = remove_later, False
    else:
        result["dirs_removed"] = remove_later or _remove_empty(dirs)
    result["usage"] = _usage(cpu_before)
    result["reuse"] = reuse
    if forked and (modules := imported_modules(spec)):
        result["modules"] = modules
    try:
        line = json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    except Exception as exc:  # noqa: BLE001 - e.g. unencodable surrogates in a message
        line = json.dumps(_failure("output_not_serializable", f"cannot encode the result: {exc}")).encode()
        reuse = False
    # Detach from the output pipe before reporting: the engine completes the run once it
    # has the result and EOF on both pipes, without waiting for the process teardown.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    ctx._write(line + b"\n")
    ctx._bind(None)
    os.close(events_fd)
    if remove_later and not (reuse and _hold_dirs(spec)) and not _remove_empty(dirs):
        _remove_trees(dirs)  # something appeared after the check (a straggling thread)
    if not reuse:
        os._exit(exit_code)
    global _memory_reserve, _reused_runs
    _reused_runs += 1
    if "modules" in result:
        mark_base_modules()  # reported once: the next runs report only what is new again
    _memory_reserve = bytearray(256 * 1024)  # for the next run, made now rather than on its path


REUSE_MAX_RUNS = 1000  # a reused process retires after this many runs (leaks stay bounded)
_reused_runs = 0
_subreaper = False
# What the process held when it was ready for a run (set by the fork server after its
# preload, and by a spare after its rehearsal): a run reports what it imported beyond it.
_base_modules: frozenset[str] | None = None
REPORTED_MODULES_MAX = 1500  # enough for a large library; the report stays one socket packet


def mark_base_modules() -> None:
    global _base_modules
    _base_modules = frozenset(sys.modules)


def imported_modules(spec: Mapping[str, Any]) -> list[str]:
    """The modules this run imported from outside the tool's own source, in import order.

    The engine preloads them in a fork server of their own, so later runs of the tool
    start with them imported (see ``engine/preloads.py``). The tool's own modules never
    go there: only what a fork server could import without the tool's source.
    """
    base = _base_modules
    if base is None or len(sys.modules) <= len(base):
        return []  # the common case costs a length check
    source_dir = os.path.join(str(spec.get("source_dir") or "/nonexistent"), "")
    tool = str(spec.get("module") or "").partition(".")[0]
    names: list[str] = []
    for name, module in list(sys.modules.items()):
        if name in base or name.startswith("_runyard_engine_"):
            continue  # the runtime's own (what else may be preloaded: preloads.preloadable)
        if name.partition(".")[0] == tool or getattr(module, "__spec__", None) is None:
            continue  # the tool itself, or a module made at run time (not importable by name)
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.startswith(source_dir):
            continue  # part of the tool's source
        names.append(name)
        if len(names) >= REPORTED_MODULES_MAX:
            break
    return names


def _begin_reused_run() -> None:
    """Per-run resets of a process that may be reused: signals, peak RSS, descendants' reaper."""
    global _subreaper, _dir_mode
    if _dir_mode is None:  # before any tool code can change the umask
        mask = os.umask(0o022)
        os.umask(mask)
        _dir_mode = 0o777 & ~mask
    # The C module's calls: the signal module wraps each in enum conversions.
    _signal.signal(signal.SIGINT, signal.default_int_handler)
    _signal.signal(signal.SIGTERM, _signal.SIG_DFL)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # in case a run replaced them
    try:  # the peak RSS reported for this run is this run's (Linux >= 4.0)
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"5")
        finally:
            os.close(fd)
    except OSError:
        pass
    if not _subreaper:
        # Orphaned descendants come back to this process, so "no child left" means
        # nothing of the run is still running anywhere.
        try:
            import ctypes

            _subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            _subreaper = False


def _left_nothing_running() -> bool:
    """The run left no thread, process or timer behind, and this process may take more runs
    (fewer than ``REUSE_MAX_RUNS`` behind it, less than half its open-files limit in use)."""
    if not _subreaper or _reused_runs + 1 >= REUSE_MAX_RUNS:
        return False
    timers = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
    if signal.alarm(0) or any(signal.getitimer(timer)[0] for timer in timers):
        return False  # it would go off during a later run
    try:
        if len(os.listdir("/proc/self/task")) != 1:
            return False
        if len(os.listdir("/proc/self/fd")) > resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2:
            return False  # files the runs keep opening: a process that takes more would run out
    except OSError:
        return False
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True  # no child at all, not even a zombie
        if pid == 0:
            return False  # a child (or an orphaned grandchild) is still running


def _flush_output() -> None:
    if "logging" in sys.modules:
        for handler in list(getattr(sys.modules["logging"], "_handlerList", [])):
            try:
                ref = handler()
                if ref is not None:
                    ref.flush()
            except BaseException:  # noqa: BLE001
                pass
    _flush_stdio()


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass


def serve_reused(spec: Mapping[str, Any], events_fd: int, sock_fd: int, *, forked: bool) -> NoReturn:
    """Run ``spec``, then, while the process may be reused, the next runs sent on ``sock_fd``.

    Each next request is a packet like the first one (header line, request JSON, the
    run's pipes as fds). EOF on the socket retires the process (the engine closes it).
    """
    import socket

    sock = socket.socket(fileno=sock_fd)
    key = reuse_key(spec)
    while True:
        run_once(spec, events_fd, forked=forked, reusable=True)
        try:
            message, fds = recv_with_fds(sock, socket.MSG_CMSG_CLOEXEC)
        except OSError:
            fds = []
        if not fds:
            _remove_held()
            _wind_down()
            os._exit(0)
        spec, events_fd, _payload = take_request(message, fds)
        if reuse_key(spec) != key:  # the engine keys its reused processes: cannot happen
            _report(events_fd, _failure("sandbox_error", "a reused process was sent another tool's run"))
            os._exit(70)
        try:
            prepare(spec)
        except BaseException as exc:  # noqa: BLE001
            report_setup_failure(events_fd, exc)
            os._exit(70)


def reuse_key(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a process keeps from its first run: only runs that agree on it may share it."""
    limits = spec.get("limits") or {}
    return (spec.get("source_dir"), spec.get("module"), spec.get("python"),
            *(limits.get(k) for k in ("memory_mb", "cpu_s", "max_open_files", "max_file_size_mb")),
            # the sandbox's read rules are set once per process: the extra files it may read too
            tuple(spec.get("read_paths") or ()))


def take_request(message: bytes, fds: list[int]) -> tuple[dict[str, Any], int, bytes]:
    """Wire a request packet's fds (output pipe on 1 and 2) and parse it: (spec, events fd, JSON).

    The packet is a header line, then the request JSON (or nothing, when the request
    came as a memfd, a third fd).
    """
    out_fd, events_fd = fds[0], fds[1]
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    payload = message.partition(b"\n")[2]
    if len(fds) > 2:
        payload = read_request(fds[2])
        os.close(fds[2])
    return json.loads(payload), events_fd, payload


def recv_with_fds(sock: Any, flags: int, maxfds: int = 8) -> tuple[bytes, list[int]]:
    """One packet and the fds passed with it (socket.recv_fds ignores its flags argument)."""
    import array
    import socket

    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_LEN(maxfds * fds.itemsize), flags)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def report_setup_failure(events_fd: int, exc: BaseException) -> None:
    message = f"preparing the run's process failed: {type(exc).__name__}: {exc}"
    _report(events_fd, _failure("sandbox_error", message))


def _report(events_fd: int, result: dict[str, Any]) -> None:
    try:
        os.write(events_fd, json.dumps(result).encode() + b"\n")
    except OSError:
        pass


def _all_empty(dirs: list[str]) -> bool:
    """Nothing in the run's dirs but themselves (the tmp dir is inside the work dir)."""
    own = {os.path.normpath(path) for path in dirs}
    for path in dirs:
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if os.path.normpath(entry.path) not in own:
                        return False
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


def _remove_empty(dirs: list[str]) -> bool:
    """Remove those of the run's dirs (innermost first) the tool left empty; True if all are gone.

    Anything left behind (files, or an artifact in the output dir) keeps its dir for the engine.
    """
    removed = True
    for path in dirs:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            removed = False
    return removed


def _remove_trees(dirs: list[str]) -> None:
    import shutil

    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def _failure(type_: str, message: str, tb: str | None = None) -> dict[str, Any]:
    return {
        "type": "result",
        "status": "failed",
        "error": {"type": type_, "message": message, "traceback": tb},
    }


def _memory_message(spec: Mapping[str, Any]) -> str:
    limit = (spec.get("limits") or {}).get("memory_mb")
    if limit:
        return f"the run exceeded its memory limit of {limit} MB"
    return "the run ran out of memory"


def _wind_down() -> None:
    # What a normal interpreter exit would do for the tool: its atexit handlers, logging
    # flush, stdio flush. The process then leaves with os._exit, skipping interpreter
    # teardown (which in a fork would also tear down the server's state).
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    if "logging" in sys.modules:
        try:
            sys.modules["logging"].shutdown()
        except BaseException:  # noqa: BLE001
            pass
    _flush_stdio()


def _rusage() -> tuple[Any, Any]:
    return resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)


def _cpu_seconds(usages: tuple[Any, Any] | None = None) -> float:
    return sum(u.ru_utime + u.ru_stime for u in usages or _rusage())


def _usage(cpu_before: float = 0.0) -> dict[str, float]:
    """This process's CPU since ``cpu_before`` (the run's, in a reused process) and peak RSS."""
    me, kids = usages = _rusage()
    return {"cpu_s": max(0.0, _cpu_seconds(usages) - cpu_before), "maxrss_kb": max(me.ru_maxrss, kids.ru_maxrss)}


_memory_reserve: bytearray | None = None  # made ahead by rehearse()


def _take_memory_reserve() -> bytearray:
    global _memory_reserve
    reserve, _memory_reserve = _memory_reserve, None
    return reserve if reserve is not None else bytearray(256 * 1024)


_REHEARSAL_REQUEST = (
    '{"run_id":"run_rehearsal","module":"rehearsal","entrypoint":"main","inputs":{"n":2,"label":"y"},'
    '"env":{"RUNYARD_TOOL":"rehearsal","RUNYARD_TOOL_VERSION":"1"},"limits":{"timeout_s":1,"memory_mb":null},'
    '"workdir":"/nonexistent","output_dir":"/nonexistent.out","python":null,"ratio":1.5,"flag":true}'
)
_LIMIT_KINDS = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE")


def rehearse() -> None:
    """Walk the request-independent part of a run's path, in a spare child before its run.

    After fork every page a run writes is copied first (a reference count update is a
    write), at a few microseconds a page: a few hundred for a no-op run. Parsing a
    request, the scrubbed environment, the import machinery on a module from its file,
    calling it and encoding a result once here takes most of those copies before the
    request arrives, off the run's latency. Nothing of it is left for the run to see.
    """
    global _memory_reserve
    _memory_reserve = bytearray(256 * 1024)  # its pages are written (zeroed) here, not in the run
    spec = json.loads(_REHEARSAL_REQUEST)
    os.environ.clear()  # the run's environment is its own; this part needs no request
    for name in _LIMIT_KINDS:
        kind = getattr(resource, name)
        resource.setrlimit(kind, resource.getrlimit(kind))  # the same values: no change
    module = _import_tool(_ENGINE_DIR, spec["module"])
    try:
        fn = getattr(module, spec["entrypoint"])
        output = to_json(fn(**_convert_inputs(fn, spec["inputs"])))
    finally:
        sys.modules.pop(spec["module"], None)
    result = {"type": "result", "status": "succeeded", "output": output, "exit_code": 0, "usage": _usage()}
    json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    imported_modules(spec)  # its code path too
    mark_base_modules()  # what the rehearsal imported is not the run's to report


def fresh_stdio() -> None:
    """New unbuffered ``sys.std*`` on fds 0-2: made by the fork server, inherited by runs.

    Unbuffered (what PYTHONUNBUFFERED does at interpreter start), so a run's output
    reaches the engine live.
    """
    def writer(fd: int) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True)  # type: ignore[type-var]

    sys.stdout = sys.__stdout__ = writer(1)
    sys.stderr = sys.__stderr__ = writer(2)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8"
    )


def _load_context(forked: bool) -> types.ModuleType:
    """Return the ``runyard.context`` module the tool will import."""
    if forked:
        return importlib.import_module("runyard.context")
    # Under a tool's own interpreter runyard is (normally) not installed: load our
    # sibling context.py by path and register it as runyard.context.
    import importlib.util as import_util

    path = os.path.join(os.path.dirname(_ENGINE_DIR), "context.py")
    loader_spec = import_util.spec_from_file_location("runyard.context", path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = import_util.module_from_spec(loader_spec)
    if "runyard" not in sys.modules:
        try:
            parent_found = import_util.find_spec("runyard") is not None
        except (ImportError, ValueError):
            parent_found = False
        if parent_found:
            importlib.import_module("runyard")
        else:
            package = types.ModuleType("runyard", "runyard shim holding runyard.context for tool code")
            package.__path__ = []  # a package, but nothing else in it is importable
            sys.modules["runyard"] = package
    sys.modules["runyard.context"] = module
    loader_spec.loader.exec_module(module)
    sys.modules["runyard"].context = module  # type: ignore[attr-defined]
    return module


def _resolve(spec: Mapping[str, Any]) -> Callable[..., Any]:
    source_dir = str(spec["source_dir"])
    if not sys.path or sys.path[0] != source_dir:  # a reused process has it there already
        sys.path.insert(0, source_dir)
    module_name = spec["module"]
    try:
        module = _import_tool(source_dir, module_name)
    except MemoryError:
        raise
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, SystemExit at import, ...
        raise ToolError(
            "import_error",
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}",
            _user_traceback(exc),
        ) from None
    name = spec["entrypoint"]
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        what = "is not callable" if fn is not None else "not found"
        raise ToolError("entrypoint_not_found", f"entrypoint {name!r} {what} in module {module_name!r}")
    return fn


def _call_tool(spec: Mapping[str, Any]) -> Any:
    fn = _resolve(spec)
    kwargs = _convert_inputs(fn, dict(spec.get("inputs") or {}))
    try:
        if _is_coroutine_function(fn):
            import asyncio

            value = asyncio.run(fn(**kwargs))
        else:
            value = fn(**kwargs)
            if not isinstance(value, _JSON_SCALARS) and _is_awaitable(value):
                import asyncio

                value = asyncio.run(_await(value))
    except SystemExit as exc:
        code = exc.code
        if code is None or code == 0:
            value = None
        else:
            raise ToolError(
                "exit_code",
                f"the tool called sys.exit({code!r})",
                _user_traceback(exc),
                exit_code=code if isinstance(code, int) else 1,
            ) from None
    return to_json(value)


def _run_script(spec: Mapping[str, Any]) -> Any:
    """Script mode: run the module's code top to bottom as ``__main__`` with the inputs as
    its globals; the output is ``{name: value}`` of the globals ``script_outputs`` names."""
    source_dir = str(spec["source_dir"])
    if not sys.path or sys.path[0] != source_dir:
        sys.path.insert(0, source_dir)  # the script may import its own package's modules
    module_name = str(spec["module"])
    path = os.path.join(source_dir, *module_name.split(".")) + ".py"
    try:
        with open(path, encoding="utf-8") as fh:
            code = compile(fh.read(), path, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError) as exc:  # checked at deploy: only a broken source dir
        raise ToolError("import_error", f"reading the script {module_name!r} failed: {exc}") from None
    import builtins

    namespace: dict[str, Any] = {**dict(spec.get("inputs") or {}), "__name__": "__main__", "__file__": path,
                                 "__builtins__": builtins}
    try:
        exec(code, namespace)  # noqa: S102 - running the tool's own code is the point
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise ToolError("exit_code", f"the script called sys.exit({exc.code!r})", _user_traceback(exc),
                            exit_code=exc.code if isinstance(exc.code, int) else 1) from None
    names = list(spec["script_outputs"])
    missing = [name for name in names if name not in namespace]
    if missing:
        raise ToolError("output_var_missing", f"the script did not set the output variable(s) "
                                              f"{', '.join(map(repr, missing))}")
    return to_json({name: namespace[name] for name in names})


async def _await(awaitable: Any) -> Any:
    return await awaitable


_JSON_SCALARS = (type(None), bool, int, float, str, dict, list, tuple)


def _is_coroutine_function(fn: Any) -> bool:
    if isinstance(fn, types.FunctionType):
        return bool(fn.__code__.co_flags & _CO_COROUTINE)
    import inspect

    return inspect.iscoroutinefunction(fn)


def _is_awaitable(value: Any) -> bool:
    import inspect

    return inspect.isawaitable(value)


def _inspect(spec: Mapping[str, Any]) -> Any:
    fn = _resolve(spec)
    schema = _load_sibling("signature_schema")
    return schema.describe(fn, use_pydantic=not spec.get("no_pydantic"))


def _import_tool(source_dir: str, module_name: str) -> types.ModuleType:
    """Import the tool's module, first on ``sys.path``.

    A top-level module file (the common case) is loaded straight from its path, as the
    path finder would load it (same spec and loader, byte code from ``__pycache__``),
    without the finder's search; anything else (a package, a dotted name, a name already
    imported, a package dir beside the file, which the finder would take first) goes
    through ``importlib.import_module``.
    """
    path = os.path.join(source_dir, module_name + ".py")
    if ("." in module_name or module_name in sys.modules or not os.path.isfile(path)
            or os.path.isdir(os.path.join(source_dir, module_name))):
        return importlib.import_module(module_name)
    return _load_file(module_name, path)


def _load_file(name: str, path: str) -> types.ModuleType:
    import importlib.util as import_util

    loader_spec = import_util.spec_from_file_location(name, path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = import_util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # as a failed import leaves it
        raise
    return module


def _load_sibling(name: str) -> types.ModuleType:
    """Load a stdlib-only sibling module by path (works with or without runyard installed)."""
    key = f"_runyard_engine_{name}"
    if key in sys.modules:
        return sys.modules[key]
    return _load_file(key, os.path.join(_ENGINE_DIR, f"{name}.py"))


# --------------------------------------------------------------------------- inputs

_PLAIN_TYPES: tuple[Any, ...] = (str, int, bool, dict, list, object)
_NO_ANNOTATION = object()


def _pass_through() -> tuple[Any, ...]:
    """Annotations whose values go to the tool as they are (the full path's set)."""
    import inspect
    import typing

    return (*_PLAIN_TYPES, typing.Any, inspect.Parameter.empty)


def _convert_inputs(fn: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Check inputs against the signature and build annotated objects from JSON values."""
    plain = _plain_call(fn, inputs)
    if plain is not None:
        return plain
    import inspect
    import typing

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return inputs
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to raw ones
        hints = {n: p.annotation for n, p in sig.parameters.items()}
    try:
        sig.bind(**inputs)
    except TypeError as exc:
        raise ToolError("input_validation_error", f"inputs do not match the signature: {exc}") from None
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        ann = hints.get(name, inspect.Parameter.empty)
        try:
            out[name] = _coerce(ann, value)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - a validation error of any library
            raise ToolError("input_validation_error", f"input {name!r} is invalid: {exc}") from None
    return out


_PLAIN_FLAGS = _CO_VARARGS | _CO_VARKEYWORDS


def _plain_call(fn: Callable[..., Any], inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The inputs as they are, when a plain function takes them without conversion.

    The common case (JSON-typed parameters, all given or defaulted) needs neither
    ``inspect.signature`` nor ``typing.get_type_hints``, whose cost in a freshly forked
    child (every object they touch is a copy-on-write page) exceeds a no-op run's.
    None means: take the full path, which also reports what does not fit.
    """
    code = getattr(fn, "__code__", None)
    if not isinstance(fn, types.FunctionType) or code is None or code.co_flags & _PLAIN_FLAGS:
        return None
    if code.co_posonlyargcount:
        return None
    npos, nkw = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames[: npos + nkw]
    defaults = fn.__defaults__ or ()
    kwdefaults = fn.__kwdefaults__ or {}
    required = set(names[: npos - len(defaults)]) | {n for n in names[npos:] if n not in kwdefaults}
    if not required.issubset(inputs) or not set(inputs).issubset(names):
        return None
    annotations = fn.__annotations__
    typing_any = getattr(sys.modules.get("typing"), "Any", _NO_ANNOTATION)  # loaded if the tool used it
    out = dict(inputs)
    for name, value in inputs.items():
        ann = annotations.get(name, _NO_ANNOTATION)
        if ann is float:
            if isinstance(value, int) and not isinstance(value, bool):
                out[name] = float(value)
        elif value is not None and ann is not _NO_ANNOTATION and ann is not typing_any and ann not in _PLAIN_TYPES:
            return None  # strings (postponed annotations), models, containers, ...
    return out


def _coerce(ann: Any, value: Any) -> Any:
    if value is None or ann in _pass_through():
        return value
    if ann is float:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    adapter = _type_adapter(ann)
    if adapter is not None:
        return adapter.validate_python(value)
    return _coerce_stdlib(ann, value)


_adapters: dict[Any, Any] = {}


def _type_adapter(ann: Any) -> Any:
    """A cached pydantic TypeAdapter for ``ann``, or None without pydantic / for odd types."""
    try:
        if ann in _adapters:
            return _adapters[ann]
    except TypeError:  # unhashable annotation
        return None
    try:
        from pydantic import TypeAdapter
    except ImportError:
        _adapters[ann] = None
        return None
    try:
        adapter: Any = TypeAdapter(ann)
    except Exception:  # noqa: BLE001 - pydantic cannot build a schema for this type
        adapter = None
    _adapters[ann] = adapter
    return adapter


def _coerce_stdlib(ann: Any, value: Any) -> Any:
    """Without pydantic: build dataclasses / models, recursing through containers."""
    import dataclasses
    import typing

    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _coerce_stdlib(options[0], value) if len(options) == 1 else value
    if origin is list and args and isinstance(value, list):
        return [_coerce_stdlib(args[0], v) for v in value]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _coerce_stdlib(args[1], v) for k, v in value.items()}
    if isinstance(ann, type):
        if hasattr(ann, "model_validate"):
            return ann.model_validate(value)
        if dataclasses.is_dataclass(ann) and isinstance(value, dict):
            hints = typing.get_type_hints(ann)
            return ann(**{k: _coerce_stdlib(hints.get(k, typing.Any), v) for k, v in value.items()})
        if issubclass(ann, enum.Enum):
            return ann(value)
        if ann is float and isinstance(value, int):
            return float(value)
    return value


# --------------------------------------------------------------------------- output


class _NotSerializable(Exception):
    pass


def to_json(value: Any) -> Any:
    """Turn a tool's return value into plain JSON values, or raise output_not_serializable."""
    try:
        return _jsonable(value, "output")
    except _NotSerializable as exc:
        raise ToolError("output_not_serializable", str(exc)) from None
    except RecursionError:
        raise ToolError(
            "output_not_serializable",
            "the return value is not JSON-serialisable: it contains a reference cycle",
        ) from None


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # JSON has no NaN/Infinity; null is what pydantic emits for them too.
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_json_key(k, where): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [_jsonable(v, f"{where}{{...}}") for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    dt = sys.modules.get("datetime")
    if dt is not None:
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
    if isinstance(value, _loaded_types(("decimal", "Decimal"), ("uuid", "UUID"), ("pathlib", "PurePath"))):
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return _jsonable(dump(mode="json"), where)
    dataclasses = sys.modules.get("dataclasses")
    if dataclasses is not None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)
        }
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "tolist"):
        return _jsonable(value.tolist(), where)
    hint = (
        " (write binary data with runyard.context.artifact instead)"
        if isinstance(value, (bytes, bytearray))
        else ""
    )
    raise _NotSerializable(
        f"the return value is not JSON-serialisable: {where} is of type {_type_name(value)}{hint}"
    )


def _loaded_types(*names: tuple[str, str]) -> tuple[type, ...]:
    """The named classes of the modules loaded so far (a value of any other cannot exist)."""
    found = []
    for module_name, attr in names:
        module = sys.modules.get(module_name)
        if module is not None:
            found.append(getattr(module, attr))
    return tuple(found)


def _json_key(key: Any, where: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float, *_loaded_types(("decimal", "Decimal"), ("uuid", "UUID")))):
        return str(key)
    raise _NotSerializable(
        f"the return value is not JSON-serialisable: {where} has a key of type {_type_name(key)}"
    )


# --------------------------------------------------------------------------- tracebacks


def _is_runtime_frame(filename: str) -> bool:
    asyncio = sys.modules.get("asyncio")
    asyncio_dir = os.path.dirname(os.path.abspath(asyncio.__file__)) if asyncio and asyncio.__file__ else None
    return (
        filename == _THIS_FILE
        or (asyncio_dir is not None and filename.startswith(asyncio_dir))
        or filename.startswith("<frozen importlib")
    )


def _user_traceback(exc: BaseException) -> str | None:
    """The formatted traceback without the runtime's own leading frames."""
    import traceback

    try:
        tb = exc.__traceback__
        while tb is not None and _is_runtime_frame(tb.tb_frame.f_code.co_filename):
            tb = tb.tb_next
        return "".join(traceback.TracebackException(type(exc), exc, tb).format())
    except MemoryError:
        return None


# --------------------------------------------------------------------------- script entry


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry when run by path under a tool's interpreter (or for a one-off inspection)."""
    import argparse

    parser = argparse.ArgumentParser(prog="runyard-child")
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--request-fd", type=int, required=True)
    parser.add_argument("--socket-fd", type=int, help="where the next runs come from (a reused process)")
    parser.add_argument("--confined", help="the process was confined before exec, to this dir")
    args = parser.parse_args(argv)
    global _confined
    _confined = args.confined
    # The fds were made inheritable for exec; the tool's own subprocesses must not get them.
    os.set_inheritable(args.events_fd, False)
    spec = json.loads(read_request(args.request_fd))
    os.close(args.request_fd)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as any Python program: EPIPE -> BrokenPipeError
    prepare(spec)
    if args.socket_fd is not None:
        os.set_inheritable(args.socket_fd, False)
        serve_reused(spec, args.events_fd, args.socket_fd, forked=False)
    run(spec, args.events_fd, forked=False)


def read_request(fd: int) -> bytes:
    """Read the whole request from a memfd/file (pread: the offset may be anywhere)."""
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


if __name__ == "__main__":
    main()

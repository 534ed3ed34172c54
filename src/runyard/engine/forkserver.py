"""The warm fork server: a pre-imported interpreter that forks one child per run.

Started by the executor as a fresh ``python -m runyard.engine.forkserver <fd>`` process
(so it has no threads and forking is safe), it imports the child runtime and the modules
its first packet names (none for the base server; a tool's imports for a preloading one,
see ``preloads.py``) once, then serves a SOCK_SEQPACKET unix socket (one JSON message
per packet):

    executor -> server   {"op": "preload", "modules": [...]}   (first, once)
                         {"op": "run", "id": N, "reuse": B}\n<request JSON>  + fds [output pipe w, events pipe w]
                         (a large request comes as a third fd, a memfd, after an empty body)
                         {"op": "took", "pid": P}          (the executor gave spare P a run)
    server -> executor   {"op": "ready", "pid": P, "threads": T, "skipped": [...]}  (T > 1: unusable)
                         {"op": "spare", "pid": P}         + fd [the executor's end of spare P's socket]
                         {"op": "started", "id": N, "pid": P}  (+ fd [the executor's end of its
                                                            socket], when the run's process may be reused)
                         {"op": "exit", "id": N, "status": S, "cpu_s": F, "maxrss_kb": K}
                         {"op": "exit", "pid": P, ...}     (a spare or a reusable child, with or without a run)
                         {"op": "failed", "id": N, "message": M}      (fork itself failed)

Per run the server only forks and reaps; everything else (parsing the request,
environment, limits, importing the tool) happens in the child, in parallel. To keep the
fork off a run's critical path the server keeps a couple of *spare* children forked
ahead of demand (when idle), each already in its own session, rehearsed, and waiting on
a socketpair for its one request. The executor holds the other end of that socketpair
and sends a run's request straight to a spare (no hop through this process), then tells
the server, which forks a replacement; without a spare the executor asks the server to
fork on demand.
Children are watched with pidfds; on exit the server kills what is left of the child's
process group while the zombie still pins the pid (so a recycled pid is never
signalled), then reaps it with ``wait4`` for the exit status and rusage. When the
executor goes away (EOF on the socket) the server kills all children and exits.
"""

from __future__ import annotations

import array
import gc
import importlib
import json
import os
import resource
import select
import signal
import socket
import sys

TYPE_CHECKING = False  # typing is not imported at run time: the base server stays small
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, NoReturn


def _sibling_runtime() -> ModuleType:
    """child.py loaded by path: under a tool's own interpreter runyard is not installed
    (or is another copy, from the tool's requirements)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
    spec = importlib.util.spec_from_file_location("_runyard_engine_child", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Run with -m (runyard's own interpreter) it is part of the package; run by path (a
# tool's virtualenv interpreter, see executor._ForkServer) it brings its runtime along.
FOREIGN = not __package__
if FOREIGN:
    runtime = _sibling_runtime()
else:
    from runyard.engine import child as runtime

# What every run's path imports, so no run imports it: the runtime, runyard.context and
# the import machinery for a tool's module file. Anything else a tool imports is learned
# from its runs and preloaded by a fork server of its own (``engine/preloads.py``), so
# runs of a tool that needs little fork from a small process: fork, copy-on-write and
# exit cost grow with the parent's size.
BASE_PRELOAD = ["atexit", "importlib.util", "runyard.context"]
SPARES = 2  # children forked ahead of demand, so a run does not wait for a fork
# Plain ints: or-ing the socket module's flag enums runs Python code on every call.
_SEND_NOWAIT = int(socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
RECV_NOWAIT = int(socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)


def preload(modules: list[str]) -> list[str]:
    """Import the base set, then ``modules`` (a tool's, learned from its runs); returns the
    names that could not be imported (skipped: a run imports them, or fails, itself)."""
    for name in BASE_PRELOAD:
        if name == "runyard.context" and FOREIGN:
            runtime._load_context(forked=False)  # by path; registered as runyard.context
        else:
            importlib.import_module(name)
    skipped = []
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - ImportError, SystemExit, anything at import
            skipped.append(name)
    # Spares rehearse with a stand-in tool, loaded from byte code as a tool is: compiled
    # once (by the first server to find it missing or stale), not at every start.
    rehearsal = os.path.join(os.path.dirname(runtime.__file__), "rehearsal.py")
    try:
        fresh = os.path.getmtime(importlib.util.cache_from_source(rehearsal)) >= os.path.getmtime(rehearsal)
    except OSError:
        fresh = False
    if not fresh:
        import py_compile

        try:
            py_compile.compile(rehearsal, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass
    return skipped


def thread_count() -> int:
    """Threads of this process, native ones included (a preloaded module may start one)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


class Server:
    def __init__(self, sock: socket.socket, spares: int = SPARES) -> None:
        self.sock = sock
        self.poll = select.epoll()
        # pidfd -> (request id, or None for a spare, pid)
        self.children: dict[int, tuple[int | None, int]] = {}
        self.idle_spares: set[int] = set()  # pids of spares handed to the executor, not yet given a run
        self.target_spares = spares
        self.outbox: list[tuple[bytes, list[int]]] = []  # (message, fds to pass and then close)
        self.poll.register(sock.fileno(), select.EPOLLIN)

    # ------------------------------------------------------------------ messaging

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        # Never block on the executor: it may itself be blocked sending us a request.
        data = json.dumps(msg, separators=(",", ":")).encode()
        self.outbox.append((data, fds or []))
        if len(self.outbox) == 1:
            self.flush()

    def flush(self) -> None:
        while self.outbox:
            data, fds = self.outbox[0]
            try:
                if fds:
                    self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
                                      _SEND_NOWAIT)
                else:
                    self.sock.send(data, _SEND_NOWAIT)
            except BlockingIOError:
                self.poll.modify(self.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
                return
            except OSError:
                self.shutdown()  # the executor is gone
            self.outbox.pop(0)
            for fd in fds:
                os.close(fd)
        self.poll.modify(self.sock.fileno(), select.EPOLLIN)

    # ------------------------------------------------------------------ loop

    def serve(self) -> NoReturn:
        ctl = self.sock.fileno()
        while True:
            # Requests first; top up the spare children only when there is nothing to do.
            need_spare = len(self.idle_spares) < self.target_spares
            events = self.poll.poll(0 if need_spare else -1)
            if not events and need_spare:
                self.fork_spare()
                continue
            for fd, mask in events:
                if fd == ctl:
                    if mask & select.EPOLLOUT:
                        self.flush()
                    if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        self.read_requests()
                else:
                    self.reap(fd)

    def read_requests(self) -> None:
        while True:
            try:
                data, fds = runtime.recv_with_fds(self.sock, RECV_NOWAIT)
            except BlockingIOError:
                return
            except OSError:
                self.shutdown()
            if not data and not fds:
                self.shutdown()  # the executor closed its end
            header, _, payload = data.partition(b"\n")
            msg = json.loads(header)
            op = msg.get("op")
            if op == "run" and len(fds) in (2, 3):
                self.fork_run(msg["id"], data, fds, reusable=bool(msg.get("reuse")))
                continue
            for fd in fds:
                os.close(fd)
            if op == "took":
                self.idle_spares.discard(msg.get("pid"))

    def fork_run(self, ident: int, message: bytes, fds: list[int], *, reusable: bool) -> None:
        """Fork a child for a run the executor had no spare for.

        A child that may take more runs (``reusable``) gets a socket for them, as a
        spare has; the executor's end goes back with the ``started`` report.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) if reusable else (None, None)
        ruleset = runtime.ruleset_for_child()
        try:
            pid = os.fork()
        except OSError as exc:
            _close(ruleset)
            for fd in fds:
                os.close(fd)
            for end in (ours, theirs):
                if end is not None:
                    end.close()
            self.send({"op": "failed", "id": ident, "message": f"fork failed: {exc}"})
            return
        if pid == 0:
            if ours is not None:
                ours.close()
            runtime.take_ruleset(ruleset)
            start_child(message, fds, sock=theirs, isolate=True, keep=_fds(ruleset))
        _close(ruleset)
        # A reusable child's exit may come during a later run: reported by pid, as a spare's.
        self.watch(pid, None if reusable else ident)
        for fd in fds:
            os.close(fd)
        if theirs is not None:
            theirs.close()
        self.send({"op": "started", "id": ident, "pid": pid}, [ours.detach()] if ours is not None else None)

    def fork_spare(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ruleset = runtime.ruleset_for_child()
        try:
            pid = os.fork()
        except OSError:
            _close(ruleset)
            ours.close()
            theirs.close()
            self.target_spares = 0  # out of processes: stop pre-forking, fork on demand
            return
        if pid == 0:
            ours.close()
            runtime.take_ruleset(ruleset)
            spare_main(theirs, _fds(ruleset))
        _close(ruleset)
        theirs.close()
        self.watch(pid, None)
        self.idle_spares.add(pid)
        self.send({"op": "spare", "pid": pid}, [ours.detach()])

    def watch(self, pid: int, ident: int | None) -> int:
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (ident, pid)
        self.poll.register(pidfd, select.EPOLLIN)
        return pidfd

    def reap(self, pidfd: int) -> None:
        entry = self.children.pop(pidfd, None)
        self.poll.unregister(pidfd)
        os.close(pidfd)
        if entry is None:
            return
        ident, pid = entry
        _killpg(pid)  # leftovers of the run (grandchildren); the zombie still pins the pgid
        _, status, usage = os.wait4(pid, 0)
        self.idle_spares.discard(pid)  # a spare that died before it got work
        report: dict[str, Any] = {"op": "exit", "status": status, "cpu_s": usage.ru_utime + usage.ru_stime,
                                  "maxrss_kb": usage.ru_maxrss}
        if ident is None:
            report["pid"] = pid  # a spare: the executor knows which run (if any) it had
        else:
            report["id"] = ident
        self.send(report)

    def shutdown(self) -> NoReturn:
        # Fds not yet sent to the executor (a new spare's socket) are closed, so no spare
        # waits on a socket whose other end only we hold; and every child is killed by
        # pid too, as a spare forked a moment ago may not have its own group yet (its
        # setsid comes first thing, but after the fork), so killpg would miss it.
        for _data, fds in self.outbox:
            for fd in fds:
                os.close(fd)
        self.outbox.clear()
        for _ident, pid in self.children.values():
            _killpg(pid)
            try:
                os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
            except ProcessLookupError:
                pass
        for _ident, pid in self.children.values():
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os._exit(0)


def _fds(fd: int | None) -> list[int]:
    return [] if fd is None else [fd]


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _isolate(keep: list[int]) -> None:
    """First steps of every child: own session, default SIGINT/SIGTERM, only ``keep`` fds open."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the server ignores it; a run must not
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], low + 1))


def spare_main(sock: socket.socket, keep: list[int]) -> NoReturn:
    """A pre-forked child: wait (already isolated) for its run (or runs, when reused)."""
    try:
        _isolate([0, 1, 2, sock.fileno(), *keep])
        # Everything that does not depend on the request happens before it arrives.
        sys.dont_write_bytecode = True
        try:
            runtime.rehearse()
        except Exception:  # noqa: BLE001 - only an optimisation: the run does the real thing
            pass
        runtime.confine_ahead()
        message, fds = runtime.recv_with_fds(sock, socket.MSG_CMSG_CLOEXEC)
    except BaseException:  # noqa: BLE001 - nothing to report to: no run was handed over
        os._exit(0)
    if not fds:
        os._exit(0)  # the server went away
    start_child(message, fds, sock=sock, isolate=False)


def start_child(message: bytes, fds: list[int], *, sock: socket.socket | None, isolate: bool,
                keep: list[int] | None = None) -> NoReturn:
    """In the forked child: wire fds, prepare, then run the tool or exec its interpreter.

    ``message`` is the executor's request packet (see ``child.take_request``). ``sock``
    brings the next runs when the tool's process may be reused. A spare is isolated
    already; a child forked for its run is isolated here (keeping ``keep`` open too: its
    Landlock ruleset).
    """
    events_fd = fds[1]
    try:
        if isolate:
            _isolate([0, 1, 2, *fds, *(keep or []), *([sock.fileno()] if sock is not None else [])])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        spec, events_fd, raw_request = runtime.take_request(message, fds)
        if sock is not None and not spec.get("reuse"):
            sock.close()  # one run only: the socket brings nothing more
            sock = None
        python = spec.get("python")
        runtime.prepare(spec)
        if python:
            # The tool's own interpreter: same isolation (session, fds, env, cwd and
            # rlimits are inherited across exec), then the runtime runs there by path.
            request_fd = os.memfd_create("runyard-request", 0)
            os.write(request_fd, raw_request)
            os.set_inheritable(events_fd, True)
            os.set_inheritable(request_fd, True)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            argv = [python, "-I", "-u", runtime.__file__]
            argv += ["--events-fd", str(events_fd), "--request-fd", str(request_fd)]
            if runtime.confined_root() is not None:
                argv += ["--confined", runtime.confined_root() or ""]
            if sock is not None:
                os.set_inheritable(sock.fileno(), True)
                argv += ["--socket-fd", str(sock.fileno())]
            os.execve(python, argv, spec["env"])
        if sock is not None:
            runtime.serve_reused(spec, events_fd, sock.detach(), forked=True)
        runtime.run(spec, events_fd, forked=True)
    except BaseException as exc:  # noqa: BLE001 - report any setup failure as the run's result
        runtime.report_setup_failure(events_fd, exc)
    os._exit(70)


def main() -> NoReturn:
    # -m puts the cwd first on sys.path; tools must not import from the server's cwd.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)
    # Ctrl-C in a terminal reaches the whole foreground group; the executor decides
    # when the server stops (by closing the socket), not the keyboard.
    # The same goes for a SIGTERM sent to the whole process group (a service manager
    # stopping runyard): the worker first lets its runs end, then closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    # The executor's first packet says what to preload: {"op": "preload", "modules": [...]}.
    first = json.loads(sock.recv(1 << 20) or b"{}")
    sandbox = first.get("sandbox")
    modules = list(first.get("modules") or [])
    if sandbox is not None:
        # The paths every run may read, opened once here (see sandbox.Static).
        runtime.open_sandbox(sandbox)
        runtime.harden_server()
        if sandbox.get("venv") is not None:
            # Under a tool's interpreter, started with -S: its environment's packages are
            # the tool's code, which runs only in its runs, confined. The server puts
            # their dir on sys.path without running their .pth files (each run does) and
            # preloads only what the interpreter itself provides.
            runtime.use_venv(sandbox["venv"])
            modules = [name for name in modules if not runtime.from_venv(name)]
    skipped = preload(modules)
    # The runs' stdio, made once here and inherited: unbuffered objects on fds 0-2 (what
    # PYTHONUNBUFFERED gives), so a run's output reaches the engine live, whatever files
    # the run dup2s onto those fds. Being write-through, they never hold anything of ours.
    runtime.fresh_stdio()
    # Freeze the preloaded heap so the GC in children does not touch (and so copy) it.
    gc.collect()
    gc.freeze()
    runtime.mark_base_modules()
    server = Server(sock)
    # A thread started by a preloaded module would not exist in the forked children
    # (forking a threaded process is unsafe): the executor does not use such a server.
    threads = thread_count()
    server.send({"op": "ready", "pid": os.getpid(), "threads": threads, "skipped": skipped[:50]})
    if threads != 1:
        os._exit(3)  # never fork: a child could inherit a lock that thread holds
    server.serve()


if __name__ == "__main__":
    main()

"""Fork servers preloading what a tool imports, learned from its runs (``engine/preloads.py``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runyard.engine import forkserver
from runyard.engine.executor import ExecRequest, Executor
from runyard.engine.preloads import MAX_GROWTHS, PreloadProfiles, preloadable
from tests.support.engine import MakeRequest
from tests.support.waiting import wait_for

IMPORTS_STATISTICS = """
import os, sys
PRELOADED = "statistics" in sys.modules
import statistics
import helper

def main(values: list = [1, 2, 3]):
    return {"preloaded": PRELOADED, "ppid": os.getppid(), "mean": statistics.mean(values), "helper": helper.NAME}
"""


@pytest.fixture
def own_executor(tmp_path: Path):
    ex = Executor(tmp_path / "data", uv_offline=True, preload_servers=2)
    ex.start()
    yield ex
    ex.close()


def _with_helper(req: ExecRequest) -> ExecRequest:
    (req.source_dir / "helper.py").write_text("NAME = 'the tool\\'s own module'\n")
    return req


def _again(req: ExecRequest, n: int) -> ExecRequest:
    work = req.workdir.parent / f"work{n}"
    work.mkdir()
    req.run_id, req.workdir, req.output_dir = f"{req.run_id}_{n}", work, work / "out"
    return req



def test_later_runs_fork_from_a_server_that_preloaded_the_tools_imports(
    own_executor: Executor, make_request: MakeRequest
) -> None:
    req = _with_helper(make_request(IMPORTS_STATISTICS))
    first = own_executor.submit(req).wait(20)
    assert first.status == "succeeded", first.error
    assert first.output["preloaded"] is False and first.output["mean"] == 2
    assert wait_for(lambda: len(own_executor.preloads.servers()) == 1)
    server = own_executor.preloads.servers()[0]
    for n in range(3):
        result = own_executor.submit(_again(req, n)).wait(20)
        assert result.status == "succeeded", result.error
        assert result.output == {"preloaded": True, "ppid": server.proc.pid, "mean": 2,
                                 "helper": "the tool's own module"}
    learned = next(iter(own_executor.preloads._learned.values()))[0]
    assert "statistics" in learned
    assert "helper" not in learned and "tool" not in learned  # the tool's own source never is


def test_a_run_that_imports_nothing_new_reports_nothing(own_executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("import os, sys, json\n\ndef main():\n    return len(sys.modules)\n")
    for n in range(3):
        result = own_executor.submit(_again(req, n) if n else req).wait(20)
        assert result.status == "succeeded", result.error
    assert own_executor.preloads._learned == {}
    assert own_executor.preloads.servers() == []


def test_a_preload_that_fails_to_import_is_skipped(own_executor: Executor, make_request: MakeRequest) -> None:
    """A module that only existed in the run (put in sys.modules by the tool) cannot be
    preloaded: the server starts without it and the runs go on."""
    source = """
import importlib.machinery, sys, types, statistics
ghost = types.ModuleType("ghost_module_of_a_run")
ghost.__spec__ = importlib.machinery.ModuleSpec("ghost_module_of_a_run", None)
sys.modules["ghost_module_of_a_run"] = ghost

def main():
    return "ok"
"""
    req = make_request(source)
    assert own_executor.submit(req).wait(20).status == "succeeded"
    assert wait_for(lambda: len(own_executor.preloads.servers()) == 1)
    for n in range(2):
        result = own_executor.submit(_again(req, n)).wait(20)
        assert (result.status, result.output) == ("succeeded", "ok"), result.error


def test_a_preload_server_that_dies_is_replaced_and_runs_go_on(
    own_executor: Executor, make_request: MakeRequest
) -> None:
    req = _with_helper(make_request(IMPORTS_STATISTICS))
    assert own_executor.submit(req).wait(20).status == "succeeded"
    assert wait_for(lambda: len(own_executor.preloads.servers()) == 1)
    dead = own_executor.preloads.servers()[0]
    dead.proc.kill()
    assert wait_for(lambda: dead.dead)
    for n in range(2):  # the first goes to the base server and starts a replacement
        result = own_executor.submit(_again(req, n)).wait(20)
        assert result.status == "succeeded", result.error
    assert wait_for(lambda: [s for s in own_executor.preloads.servers() if s is not dead and not s.dead])
    result = own_executor.submit(_again(req, 9)).wait(20)
    assert result.status == "succeeded" and result.output["preloaded"] is True


def test_reused_processes_keep_their_own_imports(own_executor: Executor, make_request: MakeRequest) -> None:
    req = _with_helper(make_request(IMPORTS_STATISTICS))
    req.reuse_process = True
    pids = set()
    for n in range(3):
        result = own_executor.submit(_again(req, n) if n else req).wait(20)
        assert result.status == "succeeded", result.error
        pids.add(result.output["ppid"])
    assert own_executor.preloads.servers() == []  # nothing to preload: the process has it


def test_the_fork_server_reports_threads_a_preload_started(tmp_path: Path) -> None:
    """Forking a threaded process is unsafe: the server says so and the executor refuses it."""
    (tmp_path / "starts_a_thread.py").write_text(
        "import threading\nthreading.Thread(target=threading.Event().wait, daemon=True).start()\n")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    src_root = str(Path(forkserver.__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-m", "runyard.engine.forkserver", str(theirs.fileno())],
                            pass_fds=[theirs.fileno()], env={"PYTHONPATH": f"{src_root}:{tmp_path}"},
                            stdout=subprocess.DEVNULL)
    theirs.close()
    try:
        ours.settimeout(30)
        ours.send(json.dumps({"op": "preload", "modules": ["starts_a_thread", "no_such_module_here"]}).encode())
        ready = json.loads(ours.recv(65536))
        assert ready["op"] == "ready"
        assert ready["threads"] == 2
        assert ready["skipped"] == ["no_such_module_here"]
    finally:
        ours.close()
    assert proc.wait(10) == 3  # it never forks


# --------------------------------------------------------------------------- the bookkeeping


class FakeServer:
    def __init__(self, modules: tuple[str, ...], python: str | None = None) -> None:
        self.modules = modules
        self.python = python
        self.dead = False
        self.busy = False


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.started: list[tuple[str, ...]] = []
        self.stopped: list[FakeServer] = []
        self.fail = fail
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None  # when set, starts wait for it

    def start(self, python: str | None, modules: tuple[str, ...]) -> FakeServer:
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            self.started.append(modules)
        if self.fail:
            raise RuntimeError("preloading left 2 threads in the fork server")
        return FakeServer(modules, python)

    def stop(self, server: FakeServer) -> None:
        self.stopped.append(server)

    def profiles(self, limit: int = 2, idle_s: float = 600.0) -> PreloadProfiles[FakeServer]:
        return PreloadProfiles(self.start, self.stop, busy=lambda s: s.busy, limit=limit, idle_s=idle_s)


def _starts_settled() -> bool:
    """Every server start the profiles spawned (each on a ``runyard-preload`` thread, started
    before ``learn``/``server_for`` returns) has returned: no start is still to come, so what
    has not started by now never will."""
    return wait_for(lambda: not any(t.name == "runyard-preload" for t in threading.enumerate()), 10)


def _ready(profiles: PreloadProfiles[FakeServer], key: object, python: str | None = None) -> FakeServer:
    assert wait_for(lambda: profiles.server_for(key, python) is not None, 5)
    server = profiles.server_for(key, python)
    assert server is not None
    return server


def test_servers_are_shared_by_equal_sets_and_bounded_in_number() -> None:
    rec = Recorder()
    profiles = rec.profiles(limit=2)
    profiles.learn("a", ["json", "statistics"])
    profiles.learn("b", ["statistics", "json"])  # the same set: the same server
    profiles.learn("c", ["decimal"])
    profiles.learn("d", ["fractions"])  # no room: runs of d fork from the base server
    assert _ready(profiles, "a") is _ready(profiles, "b")
    assert _ready(profiles, "c").modules == ("decimal",)
    assert profiles.server_for("d") is None
    assert _starts_settled()
    assert profiles.server_for("d") is None
    assert sorted(rec.started) == [("decimal",), ("json", "statistics")]


def test_a_tool_with_its_own_interpreter_gets_a_server_under_it() -> None:
    rec = Recorder()
    rec.gate = threading.Event()
    profiles = rec.profiles(limit=3)
    venv = "/envs/x/bin/python"
    assert profiles.server_for("a", venv) is None  # nothing learned yet: the interpreter alone
    rec.gate.set()
    bare = _ready(profiles, "a", venv)
    assert (bare.python, bare.modules) == (venv, ())
    rec.gate.clear()
    profiles.learn("a", ["ryhello"], python=venv)
    assert profiles.server_for("a", venv) is bare  # while the better one starts
    rec.gate.set()
    assert wait_for(lambda: profiles.server_for("a", venv) is not bare, 5)
    assert profiles.server_for("a", venv).modules == ("ryhello",)  # type: ignore[union-attr]
    assert profiles.server_for("a") is None  # runyard's own interpreter: nothing learned for it


def test_idle_servers_stop_and_make_room() -> None:
    rec = Recorder()
    profiles = rec.profiles(limit=1, idle_s=0.05)
    profiles.learn("a", ["statistics"])
    server = _ready(profiles, "a")
    server.busy = True
    time.sleep(0.1)
    profiles.retire_idle()
    assert rec.stopped == []  # runs in flight: it stays
    server.busy = False
    profiles.retire_idle()
    assert rec.stopped == [server]
    profiles.learn("b", ["decimal"])
    assert _ready(profiles, "b").modules == ("decimal",)


def test_a_set_that_fails_to_start_is_not_tried_again() -> None:
    rec = Recorder(fail=True)
    profiles = rec.profiles()
    profiles.learn("a", ["starts_a_thread"])
    assert wait_for(lambda: rec.started == [("starts_a_thread",)], 5)
    assert _starts_settled()
    assert profiles.server_for("a") is None  # asks again: no new start
    assert _starts_settled()
    assert len(rec.started) == 1


def test_a_dying_server_is_restarted_a_few_times_only() -> None:
    rec = Recorder()
    profiles = rec.profiles()
    profiles.learn("a", ["statistics"])
    for _ in range(3):  # the first start and two restarts
        _ready(profiles, "a").dead = True
        assert profiles.server_for("a") is None
    assert _starts_settled()
    assert profiles.server_for("a") is None  # asks again after the third death: no restart
    assert _starts_settled()
    assert len(rec.started) == 3


def test_a_tools_set_grows_a_bounded_number_of_times() -> None:
    rec = Recorder()
    profiles = rec.profiles(limit=10)
    for n in range(MAX_GROWTHS + 3):
        profiles.learn("a", [f"mod{n}"])
    assert profiles._learned["a"][0] == tuple(f"mod{n}" for n in range(MAX_GROWTHS))


def test_what_may_be_preloaded() -> None:
    assert preloadable("statistics") and preloadable("pydantic_core._pydantic_core")
    assert preloadable("runyard.data.sql")  # the sandboxed data jobs' library: stateless
    for name in ("runyard", "runyard.cli", "pip.__main__", "__main__", "a b", "os;x", "", 3, None, "x" * 300):
        assert not preloadable(name), name
    rec = Recorder()
    profiles = rec.profiles()
    profiles.learn("a", ["runyard.api", "pkg.__main__", 7])
    assert profiles._learned == {}
    profiles.learn("b", "statistics")  # not a list
    assert profiles._learned == {}


def test_the_child_reports_modules_only_beyond_its_base(tmp_path: Path) -> None:
    code = (
        "from runyard.engine import child\n"
        "import sys\n"
        "child.mark_base_modules()\n"
        "assert child.imported_modules({'source_dir': sys.argv[1], 'module': 'tool'}) == []\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import tool, statistics\n"
        "names = child.imported_modules({'source_dir': sys.argv[1], 'module': 'tool'})\n"
        "assert 'statistics' in names and 'tool' not in names and 'helper' not in names, names\n"
        "print('ok')\n"
    )
    (tmp_path / "tool.py").write_text("import helper\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.stdout.strip() == "ok", out.stderr


def test_the_fork_server_exits_with_its_children_when_the_executor_goes(tmp_path: Path) -> None:
    """Closed right after start-up, while spares are being forked (one may not have its own
    process group yet, and its socket may still wait to be sent): nothing is left behind."""
    src_root = str(Path(forkserver.__file__).resolve().parents[2])
    for _ in range(15):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = subprocess.Popen([sys.executable, "-m", "runyard.engine.forkserver", str(theirs.fileno())],
                                pass_fds=[theirs.fileno()], env={"PYTHONPATH": src_root}, stdout=subprocess.DEVNULL)
        theirs.close()
        try:
            ours.settimeout(30)
            ours.send(json.dumps({"op": "preload", "modules": []}).encode())
            assert json.loads(ours.recv(65536))["op"] == "ready"
            spares = _children_of(proc.pid)  # those forked so far (more may come before it reads EOF)
            ours.close()
            assert proc.wait(10) == 0  # before the fix it could wait forever for a spare
            assert wait_for(lambda spares=spares: not [p for p in spares if _children_of(1).count(p)], 5)
        finally:
            if proc.poll() is None:  # it hung: do not leave it (and its spares) behind
                for pid in [*_children_of(proc.pid), proc.pid]:
                    os.kill(pid, 9)
                proc.wait()


def _children_of(parent: int) -> list[int]:
    """Live processes whose parent is ``parent`` (orphans of a dead one have parent 1)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(pid))
    return found

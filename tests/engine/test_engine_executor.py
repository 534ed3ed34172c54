"""Executor on the fork-server fast path: real fork server, real child processes."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runyard.engine.executor import Executor, Limits, child_env
from tests.support.engine import MakeRequest


def run(executor: Executor, req, timeout: float = 20):
    output: list[bytes] = []
    events: list[dict] = []
    result = executor.submit(req, output.append, events.append).wait(timeout)
    return result, b"".join(output), events


def test_sync_entrypoint_returns_output(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        def main(x: int, name: str = "w"):
            print("hello", name)
            return {"double": x * 2, "name": name}
        """,
        inputs={"x": 21},
    )
    result, output, _ = run(executor, req)
    assert result.status == "succeeded", result.error
    assert result.output == {"double": 42, "name": "w"}
    assert result.error is None
    assert result.exit_code == 0
    assert output == b"hello w\n"
    assert result.usage["wall_ms"] > 0
    assert result.usage["peak_rss_mb"] > 1
    assert result.usage["cpu_s"] >= 0


def test_async_entrypoint(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        import asyncio

        async def main(n: int) -> list[int]:
            await asyncio.sleep(0.01)
            return [i * i for i in range(n)]
        """,
        inputs={"n": 4},
    )
    result, _, _ = run(executor, req)
    assert result.status == "succeeded", result.error
    assert result.output == [0, 1, 4, 9]


def test_user_exception_reports_type_message_and_trimmed_traceback(
    executor: Executor, make_request: MakeRequest
) -> None:
    req = make_request(
        """
        def helper():
            raise ValueError("bad input value")

        def main():
            helper()
        """
    )
    result, _, _ = run(executor, req)
    assert result.status == "failed"
    assert result.output is None
    assert result.error["type"] == "ValueError"
    assert result.error["message"] == "bad input value"
    tb = result.error["traceback"]
    assert tb.startswith("Traceback (most recent call last):")
    assert "in helper" in tb and "in main" in tb
    assert "child.py" not in tb  # runtime frames are trimmed
    assert result.exit_code == 1


def test_non_serialisable_output_names_the_type(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        class Widget:
            pass

        def main():
            return {"items": [1, Widget()]}
        """
    )
    result, _, _ = run(executor, req)
    assert result.status == "failed"
    assert result.error["type"] == "output_not_serializable"
    assert "tool.Widget" in result.error["message"]
    assert "output['items'][1]" in result.error["message"]


def test_rich_outputs_become_json(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        import dataclasses, datetime, decimal, enum, pathlib, uuid
        from pydantic import BaseModel

        class Color(enum.Enum):
            RED = "red"

        class Model(BaseModel):
            when: datetime.date
            amount: decimal.Decimal

        @dataclasses.dataclass
        class Point:
            x: int
            y: tuple[int, int]

        def main():
            return {
                "model": Model(when=datetime.date(2024, 1, 2), amount=decimal.Decimal("1.50")),
                "point": Point(1, (2, 3)),
                "dt": datetime.datetime(2024, 1, 2, 3, 4, 5),
                "dec": decimal.Decimal("2.25"),
                "path": pathlib.Path("/a/b"),
                "uuid": uuid.UUID(int=1),
                "set": {3, 1, 2},
                "tuple": (1, "a"),
                "color": Color.RED,
                "nan": float("nan"),
                7: "int key",
            }
        """
    )
    result, _, _ = run(executor, req)
    assert result.status == "succeeded", result.error
    assert result.output == {
        "model": {"when": "2024-01-02", "amount": "1.50"},
        "point": {"x": 1, "y": [2, 3]},
        "dt": "2024-01-02T03:04:05",
        "dec": "2.25",
        "path": "/a/b",
        "uuid": "00000000-0000-0000-0000-000000000001",
        "set": [1, 2, 3],
        "tuple": [1, "a"],
        "color": "red",
        "nan": None,
        "7": "int key",
    }


def test_pydantic_and_dataclass_inputs_are_converted(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        import dataclasses, datetime
        from pydantic import BaseModel

        class Order(BaseModel):
            sku: str
            qty: int = 1

        @dataclasses.dataclass
        class Address:
            city: str
            zip: str

        def main(order: Order, address: Address, when: datetime.date, ratio: float):
            assert isinstance(order, Order) and isinstance(address, Address)
            return {"sku": order.sku, "qty": order.qty, "city": address.city,
                    "year": when.year, "ratio_type": type(ratio).__name__}
        """,
        inputs={
            "order": {"sku": "A-1"},
            "address": {"city": "Oslo", "zip": "0150"},
            "when": "2024-05-06",
            "ratio": 2,
        },
    )
    result, _, _ = run(executor, req)
    assert result.status == "succeeded", result.error
    assert result.output == {"sku": "A-1", "qty": 1, "city": "Oslo", "year": 2024, "ratio_type": "float"}


def test_invalid_or_unexpected_inputs(executor: Executor, make_request: MakeRequest) -> None:
    source = """
        from pydantic import BaseModel

        class Order(BaseModel):
            qty: int

        def main(order: Order):
            return order.qty
        """
    result, _, _ = run(executor, make_request(source, inputs={"order": {"qty": "many"}}))
    assert result.status == "failed"
    assert result.error["type"] == "input_validation_error"
    assert "'order'" in result.error["message"]
    result, _, _ = run(executor, make_request(source, inputs={"order": {"qty": 1}, "extra": 1}))
    assert result.error["type"] == "input_validation_error"
    assert "extra" in result.error["message"]


def test_import_error_and_missing_entrypoint(executor: Executor, make_request: MakeRequest) -> None:
    result, _, _ = run(executor, make_request("import not_a_module_xyz\n\ndef main():\n    pass\n"))
    assert result.status == "failed"
    assert result.error["type"] == "import_error"
    assert "not_a_module_xyz" in result.error["message"]
    assert "line 1" in result.error["traceback"]

    result, _, _ = run(executor, make_request("def main(:\n    pass\n"))
    assert result.error["type"] == "import_error"
    assert "SyntaxError" in result.error["message"]

    result, _, _ = run(executor, make_request("def other():\n    pass\n", entrypoint="main"))
    assert result.error["type"] == "entrypoint_not_found"
    assert "'main'" in result.error["message"]


def test_tool_modules_import_as_the_path_finder_would(executor: Executor, make_request: MakeRequest) -> None:
    describe = """
        import importlib.util, sys

        def main():
            me = sys.modules[__name__]
            return {"name": __name__, "file": __file__, "origin": __spec__.origin,
                    "loader": type(__loader__).__name__, "cached": __cached__,
                    "found": importlib.util.find_spec(__name__).origin}
        """
    request = make_request(describe)
    out = run(executor, request)[0].output
    path = str(request.source_dir / "tool.py")
    assert out["name"] == "tool" and out["file"] == out["origin"] == out["found"] == path
    assert out["loader"] == "SourceFileLoader" and out["cached"].endswith(".pyc")

    # A package beside a module of the same name: the finder takes the package.
    request = make_request("def main():\n    return 'module file'\n")
    (request.source_dir / "tool").mkdir()
    (request.source_dir / "tool" / "__init__.py").write_text("def main():\n    return 'package'\n")
    assert run(executor, request)[0].output == "package"

    # A tool module named like a module the runtime already imported gets what
    # ``import`` gives: the module already imported (so no tool entrypoint in it).
    result = run(executor, make_request("def main():\n    return 1\n", module="json"))[0]
    assert result.error["type"] == "entrypoint_not_found"

    # A tool importing its sibling modules finds them on sys.path.
    request = make_request("import helper\n\ndef main():\n    return helper.VALUE\n")
    (request.source_dir / "helper.py").write_text("VALUE = 7\n")
    assert run(executor, request)[0].output == 7


def test_sys_exit_nonzero_is_exit_code_failure(executor: Executor, make_request: MakeRequest) -> None:
    result, _, _ = run(executor, make_request("import sys\n\ndef main():\n    sys.exit(3)\n"))
    assert result.status == "failed"
    assert result.error["type"] == "exit_code"
    assert result.exit_code == 3
    result, _, _ = run(executor, make_request("import sys\n\ndef main():\n    sys.exit(0)\n"))
    assert result.status == "succeeded"


def test_crash_by_signal_is_process_crashed(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("import os, signal\n\ndef main():\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    result, _, _ = run(executor, req)
    assert result.status == "failed"
    assert result.error["type"] == "process_crashed"
    assert "SIGSEGV" in result.error["message"]
    assert result.exit_code == -signal.SIGSEGV


def test_environment_is_scrubbed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_request: MakeRequest
) -> None:
    monkeypatch.setenv("RUNYARD_TEST_CANARY", "leaked-secret")
    # A fresh executor, so its fork server starts while the canary is in our environment.
    with Executor(tmp_path / "data") as ex:
        req = make_request(
            """
            import os, sys

            def main():
                with open("/proc/self/environ", "rb") as f:
                    initial = f.read().decode()
                return {"env": dict(os.environ), "initial": initial, "cwd": os.getcwd(),
                        "stdin": sys.stdin.read(), "pgid_is_own": os.getpgid(0) == os.getpid(),
                        "sid_is_own": os.getsid(0) == os.getpid()}
            """,
            env={"MY_SECRET": "s3cret", "RUNYARD_API_URL": "http://x"},
        )
        result, _, _ = run(ex, req)
    assert result.status == "succeeded", result.error
    env = result.output["env"]
    assert "leaked-secret" not in str(result.output)
    assert set(env) == {
        "PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "RUNYARD_RUN_ID", "RUNYARD_OUTPUT_DIR",
        "RUNYARD_WORKDIR", "MY_SECRET", "RUNYARD_API_URL",
    }  # fmt: skip
    assert env["HOME"] == str(req.workdir) == result.output["cwd"]
    assert env["TMPDIR"].startswith(str(req.workdir))
    assert env["RUNYARD_RUN_ID"] == req.run_id
    assert env["RUNYARD_OUTPUT_DIR"] == str(req.output_dir)
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["MY_SECRET"] == "s3cret"
    assert result.output["stdin"] == ""  # /dev/null
    assert result.output["pgid_is_own"] and result.output["sid_is_own"]


def test_memory_limit(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        "def main():\n    data = bytearray(2 * 1024 ** 3)\n    return len(data)\n",
        limits=Limits(timeout_s=20, memory_mb=256),
    )
    result, _, _ = run(executor, req)
    assert result.status == "failed"
    assert result.error["type"] == "memory_limit_exceeded"
    assert "256 MB" in result.error["message"]


def test_cpu_limit(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("def main():\n    while True:\n        pass\n", limits=Limits(timeout_s=20, cpu_s=1))
    result, _, _ = run(executor, req)
    assert result.status == "failed"
    assert result.error["type"] == "cpu_limit_exceeded"


def test_timeout(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("import time\n\ndef main():\n    time.sleep(30)\n", limits=Limits(timeout_s=0.5))
    t = time.monotonic()
    result, _, _ = run(executor, req)
    assert time.monotonic() - t < 3
    assert result.status == "timed_out"
    assert result.error["type"] == "timeout"
    assert result.output is None


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead, awaiting its reaper
    except FileNotFoundError:
        return True


def test_cancel_kills_process_group_within_a_second(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        import os, subprocess, time

        def main():
            child = subprocess.Popen(["sleep", "60"])
            print("pids", os.getpid(), child.pid, flush=True)
            time.sleep(60)
        """
    )
    seen = threading.Event()
    output: list[bytes] = []

    def on_output(chunk: bytes) -> None:
        output.append(chunk)
        text = b"".join(output)
        if b"pids" in text and text.rstrip(b" ").endswith(b"\n"):  # print() may write in pieces
            seen.set()

    execution = executor.submit(req, on_output, lambda e: None)
    assert seen.wait(10), output
    pids = [int(p) for p in b"".join(output).split()[1:3]]
    assert execution.pid == pids[0]
    t = time.monotonic()
    execution.cancel()
    result = execution.wait(5)
    assert time.monotonic() - t < 1.0
    assert result.status == "cancelled"
    assert result.error["type"] == "cancelled"
    deadline = time.monotonic() + 2
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(_gone(p) for p in pids), pids


def test_finished_run_leaves_no_background_processes(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        import subprocess

        def main():
            return subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
        """
    )
    result, _, _ = run(executor, req)
    assert result.status == "succeeded"
    deadline = time.monotonic() + 2
    while not _gone(result.output) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(result.output)


def test_output_streams_live(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        import sys, time

        def main():
            print("first line")
            sys.stderr.write("to stderr\\n")
            time.sleep(1.5)
            print("last line")
        """
    )
    chunks: list[bytes] = []
    early = threading.Event()
    execution = executor.submit(req, lambda c: (chunks.append(c), early.set()), lambda e: None)
    assert early.wait(5)
    assert not execution.done()  # the child is still sleeping
    assert b"first line" in b"".join(chunks)
    result = execution.wait(10)
    assert result.status == "succeeded"
    assert b"".join(chunks) == b"first line\nto stderr\nlast line\n"


def test_progress_trace_and_artifacts(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request(
        """
        from pathlib import Path
        from runyard import context
        import runyard.context

        def main():
            context.progress(0.25, "loading")
            runyard.context.trace("step", rows=3)
            a = context.artifact("report.txt", "hello")
            Path("local.bin").write_bytes(b"\\x00\\x01")
            b = context.artifact("local.bin")
            context.artifact("sub/data.json", b"{}")
            context.progress(1.0)
            return {"run_id": context.run_id(), "out": str(context.output_dir()), "a": str(a), "b": str(b)}
        """
    )
    result, _, events = run(executor, req)
    assert result.status == "succeeded", result.error
    assert result.output["run_id"] == req.run_id
    assert result.output["out"] == str(req.output_dir)
    kinds = [(e["type"], e.get("fraction"), e.get("name"), e.get("path")) for e in events]
    assert kinds == [
        ("progress", 0.25, None, None),
        ("trace", None, "step", None),
        ("artifact", None, None, "report.txt"),
        ("artifact", None, None, "local.bin"),
        ("artifact", None, None, "sub/data.json"),
        ("progress", 1.0, None, None),
    ]
    assert events[0]["message"] == "loading"
    assert events[1]["attrs"] == {"rows": 3}
    assert (req.output_dir / "report.txt").read_text() == "hello"
    assert (req.output_dir / "local.bin").read_bytes() == b"\x00\x01"
    assert (req.output_dir / "sub" / "data.json").read_bytes() == b"{}"


def test_large_inputs_travel_out_of_band(executor: Executor, make_request: MakeRequest) -> None:
    big = "x" * 300_000
    req = make_request("def main(s: str):\n    return len(s)\n", inputs={"s": big})
    result, _, _ = run(executor, req)
    assert result.status == "succeeded", result.error
    assert result.output == 300_000


def test_concurrent_submits_from_many_threads(executor: Executor, make_request: MakeRequest) -> None:
    reqs = [make_request("def main(i: int):\n    return i * 10\n", inputs={"i": i}) for i in range(24)]
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        results[i] = executor.submit(reqs[i], lambda c: None, lambda e: None).wait(20)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: r.output for i, r in results.items()} == {i: i * 10 for i in range(len(reqs))}


def test_wait_timeout_callbacks_and_asyncio(executor: Executor, make_request: MakeRequest) -> None:
    execution = executor.submit(
        make_request("import time\n\ndef main():\n    time.sleep(0.3)\n    return 1\n")
    )
    with pytest.raises(TimeoutError):
        execution.wait(0.01)
    got: list = []
    done = threading.Event()
    execution.add_done_callback(lambda r: (got.append(r), done.set()))
    assert done.wait(10)
    assert got[0].output == 1
    late: list = []
    execution.add_done_callback(late.append)  # already done: called at once
    assert late == got

    async def main() -> object:
        return await executor.submit(make_request("async def main():\n    return 'a'\n")).wait_async()

    assert asyncio.run(main()).output == "a"


def test_fork_server_crash_fails_inflight_runs_and_restarts(
    tmp_path: Path, make_request: MakeRequest
) -> None:
    with Executor(tmp_path / "data") as ex:
        execution = ex.submit(make_request("import time\n\ndef main():\n    time.sleep(30)\n"))
        deadline = time.monotonic() + 10
        while execution.pid is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child_pid = execution.pid
        assert child_pid is not None
        server = ex._server
        assert server is not None
        spares = _spare_pids(ex)
        assert spares  # the server keeps spares forked ahead, held by the executor
        os.kill(server.proc.pid, signal.SIGKILL)
        result = execution.wait(5)
        assert result.status == "failed"
        assert result.error["type"] == "executor_error"
        assert "fork server died" in result.error["message"]
        deadline = time.monotonic() + 2
        while not all(_gone(pid) for pid in (child_pid, *spares)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(child_pid)
        assert all(_gone(pid) for pid in spares)  # orphaned spares read EOF and leave
        # The next submit starts a new fork server.
        result, _, _ = run(ex, make_request("def main():\n    return 'back'\n"))
        assert result.status == "succeeded"
        assert result.output == "back"
        assert ex._server is not server


def _spare_pids(ex: Executor, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = ex._server
        if server is not None and server.spares:
            with server.lock:
                return [pid for pid, _sock in server.spares]
        time.sleep(0.01)
    return []


def test_runs_go_on_when_spares_die(tmp_path: Path, make_request: MakeRequest) -> None:
    with Executor(tmp_path / "data") as ex:
        assert run(ex, make_request("def main():\n    return 0\n"))[0].status == "succeeded"
        for round_ in range(3):
            killed = _spare_pids(ex)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)  # e.g. the OOM killer, while they wait for work
            deadline = time.monotonic() + 5
            while set(killed) & set(_spare_pids(ex)) and time.monotonic() < deadline:
                time.sleep(0.01)  # the server reports them gone; the executor drops them
            results = [run(ex, make_request(f"def main():\n    return {round_ * 10 + i}\n"))[0] for i in range(4)]
            assert [r.output for r in results] == [round_ * 10 + i for i in range(4)], results
        spares = _spare_pids(ex)
        assert spares  # replaced
    deadline = time.monotonic() + 5
    while not all(_gone(pid) for pid in spares) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(_gone(pid) for pid in spares)  # closing the executor ends its spares


def test_close_ends_pending_runs(tmp_path: Path, make_request: MakeRequest) -> None:
    ex = Executor(tmp_path / "data")
    execution = ex.submit(make_request("import time\n\ndef main():\n    time.sleep(30)\n"))
    time.sleep(0.2)
    t = time.monotonic()
    ex.close()
    result = execution.wait(5)
    assert time.monotonic() - t < 3
    assert result.status == "failed"
    assert "closed" in result.error["message"]
    with pytest.raises(RuntimeError):
        ex.submit(make_request("def main():\n    pass\n"))


def test_child_creates_its_dirs_and_removes_them_when_left_empty(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    import dataclasses

    base = make_request(
        """
        import os, tempfile
        def main(leave: bool = False):
            here = os.getcwd()
            tempfile.NamedTemporaryFile(delete=True).close()  # TMPDIR exists and is usable
            assert os.path.isdir(os.environ["RUNYARD_OUTPUT_DIR"])
            if leave:
                open("left.txt", "w").write("x")
            return here
        """
    )
    clean = dataclasses.replace(base, workdir=tmp_path / "runs" / "a", output_dir=tmp_path / "runs" / "a.out")
    result, _, _ = run(executor, clean)
    assert result.status == "succeeded", result.error
    assert result.output == str(clean.workdir)
    assert result.dirs_removed is True
    # Removed right after the result is out (an rmdir may wait for the journal), before exit.
    deadline = time.monotonic() + 5
    while (clean.workdir.exists() or clean.output_dir.exists()) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not clean.workdir.exists() and not clean.output_dir.exists()

    messy = dataclasses.replace(base, inputs={"leave": True}, workdir=tmp_path / "runs" / "b",
                                output_dir=tmp_path / "runs" / "b.out")
    result, _, _ = run(executor, messy)
    assert result.status == "succeeded", result.error
    assert result.dirs_removed is False  # the engine's caller must clean up what was left
    assert (messy.workdir / "left.txt").read_text() == "x"
    assert not (messy.workdir / ".tmp").exists()
    # A sandboxed child cannot remove its output dir (a write in its parent): left empty.
    assert not messy.output_dir.exists() or not any(messy.output_dir.iterdir())


def test_dirs_count_as_empty_with_nothing_but_each_other(tmp_path: Path) -> None:
    from runyard.engine import child

    work, out = tmp_path / "w", tmp_path / "w.out"
    dirs = [str(work / ".tmp"), str(out), str(work)]
    assert child._all_empty(dirs)  # none made yet
    (work / ".tmp").mkdir(parents=True)
    out.mkdir()
    assert child._all_empty(dirs)
    (work / "f.txt").write_text("x")
    assert not child._all_empty(dirs)
    assert child._remove_empty(dirs) is False and work.exists() and not out.exists()
    (work / "f.txt").unlink()
    (out / "nested").mkdir(parents=True)
    assert not child._all_empty(dirs)


def test_spare_rehearsal_leaves_nothing_behind(executor: Executor, make_request: MakeRequest) -> None:
    source = """
        import os, sys

        def main():
            return {"mine": True, "modules": sorted(m for m in sys.modules if "rehearsal" in m),
                    "env": sorted(os.environ)}
        """
    for _ in range(3):  # spares, whichever serves the run
        request = make_request(source, module="rehearsal")
        out = run(executor, request)[0].output
        assert out["mine"] is True  # the tool's own module, not the stand-in of the same name
        assert out["modules"] == ["rehearsal"]
        assert out["env"] == sorted(child_env(request))  # the run's environment, nothing else


def test_plain_signatures_skip_introspection_and_others_take_the_full_path() -> None:
    from runyard.engine import child

    namespace: dict = {}
    # Compiled without this file's postponed annotations (dont_inherit), as a tool module would be.
    exec(compile(textwrap.dedent("""
        class Model:
            pass

        def plain(x: float, n: int = 2, *, flag: bool = False, data: dict | None = None):
            return None

        def rich(m: Model):
            return None

        def postponed(m: "int"):
            return None

        def star(*args):
            return None
        """), "tool.py", "exec", dont_inherit=True), namespace)
    plain, rich, postponed, star = (namespace[n] for n in ("plain", "rich", "postponed", "star"))
    converted = child._plain_call(plain, {"x": 3, "flag": True})
    assert converted == {"x": 3.0, "flag": True} and isinstance(converted["x"], float)
    assert child._plain_call(plain, {}) is None  # x missing: the full path reports it
    assert child._plain_call(plain, {"x": 1, "other": 2}) is None  # unknown input: likewise
    assert child._plain_call(rich, {"m": {}}) is None
    assert child._plain_call(postponed, {"m": 1}) is None
    assert child._plain_call(star, {}) is None
    # Through the full path, the same inputs are converted and checked as before.
    assert child._convert_inputs(plain, {"x": 3})["x"] == 3.0
    with pytest.raises(child.ToolError) as err:
        child._convert_inputs(plain, {"x": 1, "other": 2})
    assert err.value.type == "input_validation_error"


def test_the_run_runtime_imports_little(tmp_path: Path) -> None:
    """A venv tool's interpreter imports child.py (and context.py) on every run: they must not
    pull in asyncio, typing, inspect and the like before a tool needs them (~90 ms here)."""
    import subprocess
    import sys

    engine_dir = Path(__file__).resolve().parents[2] / "src" / "runyard" / "engine"
    heavy = ["asyncio", "typing", "inspect", "dataclasses", "decimal", "uuid", "pathlib", "traceback",
             "argparse", "threading", "shutil", "datetime"]
    script = (f"import sys; sys.path.insert(0, {str(engine_dir)!r}); import child; "
              "ctx = child._load_context(False); "
              f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         check=True).stdout.strip()
    assert out == ""

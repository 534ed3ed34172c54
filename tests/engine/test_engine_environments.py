"""Virtualenvs built with uv (offline, from a wheel made here) and runs under them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from runyard.engine.environments import (
    Environment,
    EnvironmentBuildFailed,
    EnvironmentManager,
    environment_key,
    normalise_requirements,
)
from runyard.engine.executor import ExecRequest, Executor, Limits, SandboxConfig
from runyard.engine.introspect import inspect_entrypoint
from tests.support.engine import MakeRequest, build_wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Environment:
    manager = EnvironmentManager(tmp_path_factory.mktemp("data"), offline=True)
    return manager.prepare([str(wheel)])


def test_requirements_are_normalised_for_the_cache_key() -> None:
    assert normalise_requirements(["b==1 ", "", "# comment", "a  >= 2", "b==1"]) == ["a >= 2", "b==1"]
    assert environment_key(["a", "b"]) == environment_key(["b", "a", "a"])
    assert environment_key(["a"]) != environment_key(["a"], python_version="3.12.0")


def test_build_from_local_wheel_offline(venv: Environment, wheel: Path) -> None:
    assert venv.built
    assert venv.python.exists()
    assert (venv.path / "ready").exists()
    log = (venv.path / "build.log").read_text()
    assert "uv" in log and str(wheel) in log
    # A second manager over the same root finds it ready and does not rebuild.
    manager = EnvironmentManager(venv.path.parent.parent, offline=True)
    again = manager.prepare([str(wheel)])
    assert again.path == venv.path and not again.built
    assert manager.ensure([str(wheel)]) == venv.python


def test_concurrent_builders_build_once(tmp_path: Path, wheel: Path) -> None:
    manager = EnvironmentManager(tmp_path / "data", offline=True)
    results: list[Environment] = []
    threads = [
        threading.Thread(target=lambda: results.append(manager.prepare([str(wheel)]))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.path for r in results}) == 1
    assert sorted(r.built for r in results) == [False, False, True]


def test_failed_build_raises_with_log_and_is_not_marked_ready(tmp_path: Path) -> None:
    manager = EnvironmentManager(tmp_path / "data", offline=True)
    reqs = ["runyard-no-such-package-xyz==1.0"]
    with pytest.raises(EnvironmentBuildFailed) as info:
        manager.prepare(reqs)
    assert "runyard-no-such-package-xyz" in info.value.log
    env_dir = manager.path_for(reqs)
    assert not (env_dir / "ready").exists()
    assert (env_dir / "build.log").read_text() == info.value.log
    with pytest.raises(EnvironmentBuildFailed):  # retried, not cached as a failure
        manager.ensure(reqs)


def test_run_under_venv_interpreter(
    executor: Executor, make_request: MakeRequest, venv: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_TEST_CANARY", "leaked")
    req = make_request(
        """
        import os, sys
        import ryhello
        from runyard import context

        def main(text: str):
            context.progress(0.5, "venv")
            print("in venv", flush=True)
            context.artifact("v.txt", "from venv")
            return {"shout": ryhello.shout(text), "exe": sys.executable, "env": sorted(os.environ),
                    "path": os.environ["PATH"]}
        """,
        inputs={"text": "hi"},
        python=str(venv.python),
    )
    output: list[bytes] = []
    events: list[dict] = []
    result = executor.submit(req, output.append, events.append).wait(30)
    assert result.status == "succeeded", result.error
    assert result.output["shout"] == "HI!"
    assert result.output["exe"].startswith(str(venv.path))
    assert result.output["path"].startswith(str(venv.python.parent) + ":")
    assert "RUNYARD_TEST_CANARY" not in result.output["env"]
    assert b"in venv\n" in b"".join(output)
    assert [e["type"] for e in events] == ["progress", "artifact"]
    assert (req.output_dir / "v.txt").read_text() == "from venv"


def test_venv_run_errors_and_limits(executor: Executor, make_request: MakeRequest, venv: Environment) -> None:
    req = make_request("def main():\n    raise KeyError('k')\n", python=str(venv.python))
    result = executor.submit(req).wait(30)
    assert result.error["type"] == "KeyError"
    assert "raise KeyError" in result.error["traceback"]

    req = make_request(
        "import time\n\ndef main():\n    time.sleep(30)\n",
        python=str(venv.python),
        limits=Limits(timeout_s=1),
    )
    result = executor.submit(req).wait(30)
    assert result.status == "timed_out"

    req = make_request(
        "def main():\n    return len(bytearray(2 * 1024 ** 3))\n",
        python=str(venv.python),
        limits=Limits(timeout_s=20, memory_mb=256),
    )
    result = executor.submit(req).wait(30)
    assert result.error["type"] == "memory_limit_exceeded"


def test_missing_interpreter_fails_cleanly(
    executor: Executor, make_request: MakeRequest, tmp_path: Path
) -> None:
    req = make_request("def main():\n    pass\n", python=str(tmp_path / "nope" / "python"))
    result = executor.submit(req).wait(30)
    assert result.status == "failed"
    assert result.error["type"] == "sandbox_error"
    assert "nope" in result.error["message"]


def test_inspect_under_venv_without_pydantic_uses_stdlib_schemas(tmp_path: Path, venv: Environment) -> None:
    (tmp_path / "tool.py").write_text(
        "from typing import Literal, Optional\n"
        "import ryhello\n"
        "def main(a: int, b: list[str], c: Literal['x', 'y'] = 'x', d: Optional[float] = None):\n"
        '    """Shout things.\n\n    Args:\n        a: how many\n    """\n'
    )
    info = inspect_entrypoint(tmp_path, "tool", "main", python=str(venv.python))
    schema = info["input_schema"]
    assert info["description"] == "Shout things."
    assert schema["required"] == ["a", "b"]
    assert schema["properties"]["a"] == {"type": "integer", "description": "how many"}
    assert schema["properties"]["b"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["c"] == {"enum": ["x", "y"], "type": "string", "default": "x"}
    assert schema["properties"]["d"] == {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None}


VENV_TOOL = """
import os, sys
PRELOADED = "ryhello" in sys.modules
import ryhello
from runyard import context

def main():
    context.progress(1, 1)
    return {"exe": sys.executable, "ppid": os.getppid(), "shout": ryhello.shout("a"),
            "path": os.environ["PATH"].split(":")[0], "preloaded": PRELOADED}

"""


@pytest.mark.parametrize("sandbox", ["on", "off"])
def test_runs_under_a_venv_fork_from_a_server_running_that_interpreter(
    tmp_path: Path, make_request: MakeRequest, venv: Environment, sandbox: str
) -> None:
    """No interpreter start per run: a fork server runs under the tool's interpreter, then
    one that also preloaded what the tool imports (learned from its runs). Under the
    sandbox the server loads nothing of the venv (its packages are the tool's code, which
    runs only confined): the stdlib is preloaded, the venv's packages each run imports."""
    ex = Executor(tmp_path / "data", uv_offline=True, sandbox=SandboxConfig(mode=sandbox))  # type: ignore[arg-type]
    ex.start()
    try:
        python = str(venv.python)
        req = make_request(VENV_TOOL, python=python)

        def run(n: int) -> dict:
            work = req.workdir.parent / f"w{n}"
            again = ExecRequest(**{**req.__dict__, "run_id": f"{req.run_id}_{n}", "workdir": work,
                                   "output_dir": work / "out"})
            result = ex.submit(again).wait(30)
            assert result.status == "succeeded", result.error
            assert result.output["exe"] == python and result.output["shout"] == "A!"
            assert result.output["path"] == str(venv.python.parent)
            return result.output

        run(0)  # the interpreter is started for it, as before; a server under it starts
        deadline = time.monotonic() + 30
        seen: list[dict] = []
        while time.monotonic() < deadline:
            seen.append(run(len(seen) + 1))
            servers = {s.proc.pid: s for s in ex.preloads.servers() if s.python == python}
            if seen[-1]["ppid"] in servers and (seen[-1]["preloaded"] or sandbox == "on"):
                break
            time.sleep(0.05)
        assert seen[-1]["ppid"] in servers and servers[seen[-1]["ppid"]].python == python
        # ryhello was imported by the server (learned from a run), unless it is the venv's.
        assert seen[-1]["preloaded"] is (sandbox == "off")
    finally:
        ex.close()

"""Fixtures for the engine tests: a real Executor (fork server + child processes)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.engine.executor import ExecRequest, Executor, Limits
from tests.support.engine import MakeRequest


@pytest.fixture(scope="session")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    ex = Executor(tmp_path_factory.mktemp("engine-data"), uv_offline=True)
    ex.start()
    yield ex
    ex.close()


@pytest.fixture
def make_request(tmp_path: Path) -> MakeRequest:
    """Write ``source`` as tool.py in a fresh source dir and build an ExecRequest for it."""
    counter = [0]

    def make(
        source: str,
        entrypoint: str = "main",
        inputs: dict[str, Any] | None = None,
        *,
        env: dict[str, str] | None = None,
        limits: Limits | None = None,
        python: str | None = None,
        module: str = "tool",
    ) -> ExecRequest:
        counter[0] += 1
        root = tmp_path / f"case{counter[0]}"
        src = root / "src"
        src.mkdir(parents=True)
        (src / f"{module}.py").write_text(textwrap.dedent(source))
        # Under the sandbox a reused process may write only in its version's own dir
        # (executor.REUSE_DIR_PREFIX), where the worker puts the runs of such a tool.
        workdir = root / "reuse-case" / "work"
        workdir.mkdir(parents=True)
        return ExecRequest(
            run_id=f"run_test{counter[0]}",
            source_dir=src,
            module=module,
            entrypoint=entrypoint,
            inputs=inputs or {},
            env=env or {},
            workdir=workdir,
            output_dir=workdir / "out",
            limits=limits or Limits(timeout_s=20),
            python=python,
        )

    return make

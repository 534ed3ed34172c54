"""CLI fixtures: invoke ``runyard`` in-process (Typer's CliRunner) against the shared
loopback server, with an isolated config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from runyard.cli.main import app
from tests.support.cli import Invoke


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "config.json"


@pytest.fixture
def cli(server: Any, config_file: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str | None] | None = None,
               auth: bool = True) -> Result:
        full_env: dict[str, str | None] = {
            "RUNYARD_CONFIG": str(config_file), "COLUMNS": "250", "RUNYARD_PROFILE": None,
            "RUNYARD_BASE_URL": server.base_url if auth else None,
            "RUNYARD_API_KEY": server.admin_key if auth else None,
        }
        full_env.update(env or {})
        return runner.invoke(app, list(args), input=input, env=full_env, catch_exceptions=False)

    return invoke


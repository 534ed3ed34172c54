"""The SDK and CLI names of script-mode tools, renames and per-run timeouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from runyard import Client
from runyard.cli.main import app
from runyard.sdk.errors import ConflictError, NotFoundError, ValidationError
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> Any:
    with Client(api_key=server.admin_key, base_url=server.base_url) as sdk:
        yield sdk


def test_the_sdk_deploys_a_script_renames_it_and_gives_a_run_its_timeout(client: Any, unique: str) -> None:
    name = f"sdk-script-{unique}"
    code = "def double(v):\n    return 2 * v\n\ntotal = double(sum(values))\n"
    tool = client.tools.deploy(code, name=name, mode="script", default_inputs={"values": []},
                               output_vars="total", timeout_s=30)
    assert tool.mode == "script" and tool.output_vars == ["total"] and tool.owner_id, tool
    assert client.tools.run(name, {"values": [1, 2]}, timeout=60).output == {"total": 6}

    renamed = client.tools.rename(name, f"{name}-v2")
    assert renamed.id == tool.id and renamed.name == f"{name}-v2"
    with pytest.raises(NotFoundError):
        client.tools.get(name)
    other = client.tools.deploy("x = 1\n", name=name, mode="script", output_vars=["x"])
    with pytest.raises(ConflictError) as taken:
        client.tools.rename(other.id, f"{name}-v2")
    assert taken.value.code == "tool_exists"

    run = client.runs.create(f"{name}-v2", {"values": [5]}, wait=30, timeout_s=10)
    assert run.timeout_s == 10 and run.output == {"total": 10}, run
    with pytest.raises(ValidationError) as too_long:
        client.runs.create(f"{name}-v2", timeout_s=31)
    assert too_long.value.code == "timeout_too_large"
    updated = client.tools.update(f"{name}-v2", mode="function", code="def main():\n    return 1\n")
    assert updated.mode == "function" and updated.output_vars is None


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
               "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key}
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


def test_the_cli_deploys_a_script_renames_it_and_runs_it_with_a_timeout(cli: Any, tmp_path: Path,
                                                                        unique: str) -> None:
    source = tmp_path / "job.py"
    source.write_text("def helper():\n    return 1\n\ndef other():\n    return 2\n\nresult = helper() + other()\n")
    name = f"cli-script-{unique}"
    deployed = cli("deploy", str(source), "--name", name, "--script", "--output-var", "result", "--timeout-s", "30")
    assert deployed.exit_code == 0, deployed.output
    shown = cli("tools", "get", name)
    assert "script" in shown.stdout and "result" in shown.stdout, shown.stdout
    renamed = cli("tools", "rename", name, f"{name}-b")
    assert renamed.exit_code == 0 and f"{name}-b" in renamed.output, renamed.output
    ran = cli("run", f"{name}-b", "--timeout-s", "5", "--json")
    assert ran.exit_code == 0 and '"result": 3' in ran.stdout and '"timeout_s": 5' in ran.stdout, ran.output
    refused = cli("run", f"{name}-b", "--timeout-s", "31")
    assert refused.exit_code != 0 and "timeout_too_large" in refused.output, refused.output
    gone = cli("run", name)
    assert gone.exit_code != 0 and "tool_not_found" in gone.output, gone.output
    misuse = cli("deploy", str(source), "--name", name, "--output-var", "result")
    assert misuse.exit_code != 0 and "--script" in misuse.output, misuse.output

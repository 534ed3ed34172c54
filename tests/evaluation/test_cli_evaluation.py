"""The CLI's evaluation commands against the real server: runyard runs expected / compare /
feedback and runyard batches create / get / list / cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from runyard.cli.main import app
from tests.support.api import deploy, run
from tests.support.servers import Server

ECHO = "def main(x: int = 1):\n    return {'x': x}\n"


def _cli(server: Server, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key}

    def invoke(*args: str) -> Any:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        return result

    return invoke


def test_cli_evaluation_commands(server: Server, api, unique: str, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    tool = f"cliev-{unique}"
    deploy(api, tool, ECHO)
    rid = run(api, tool, {"x": 1}, tags={"example_id": "a"})["id"]
    missing = cli("runs", "compare", rid, "--json")
    assert missing.exit_code == 1 and "expected_not_found" in missing.output

    made = cli("runs", "expected", rid, "--copy-output", "--options", '{"numeric_tolerance": 0.5}', "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["output"] == {"x": 1}
    shown = cli("runs", "expected", rid)
    assert shown.exit_code == 0 and "a" in shown.stdout
    compared = json.loads(cli("runs", "compare", rid, "--json").stdout)
    assert compared["score"] == 1.0
    other = run(api, tool, {"x": 3})["id"]
    against = json.loads(cli("runs", "compare", other, "--against", rid, "--json").stdout)
    assert against["fields"][0]["path"] == "$.x"
    value = json.loads(cli("runs", "compare", other, "--expected", '{"x": 3}', "--json").stdout)
    assert value["score"] == 1.0

    fb = json.loads(cli("runs", "feedback", rid, "--rating", "down", "--label", "wrong", "--json").stdout)
    assert fb["rating"] == "down" and fb["labels"] == ["wrong"]
    assert json.loads(cli("runs", "feedback", rid, "--resolve", "--json").stdout)["resolved"] is True

    examples = tmp_path / "examples.json"
    examples.write_text(json.dumps([{"example_id": "a", "inputs": {"x": 1}}, {"example_id": "b", "inputs": {"x": 2}}]))
    created = cli("batches", "create", "--tool", tool, "--examples", f"@{examples}", "--wait", "--json")
    assert created.exit_code == 0, created.output
    batch = json.loads(created.stdout)
    assert batch["counts"] == {"succeeded": 2} and batch["mean_score"] == 1.0
    assert cli("batches", "get", batch["id"]).exit_code == 0
    listed = json.loads(cli("batches", "list", "--tool", tool, "--json").stdout)
    assert [b["id"] for b in listed] == [batch["id"]]
    assert json.loads(cli("batches", "cancel", batch["id"], "--json").stdout)["status"] == "cancelled"
    bad = cli("batches", "create", "--tool", tool, "--examples", "[]", "--json")
    assert bad.exit_code == 1 and "validation_error" in bad.output

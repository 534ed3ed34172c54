"""Every CLI command through the Typer app, in table and --json modes."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from tests.support.cli import Invoke, as_json

ADD = '''
def main(a: int, b: int = 2) -> int:
    """Add."""
    print(f"adding {a} and {b}")
    return a + b
'''
FAIL = '''
def main(x: int = 1):
    print("about to fail")
    raise ValueError(f"bad x={x}")
'''
SLEEP = "import time\n\ndef main(s: float = 30):\n    time.sleep(s)\n    return s\n"
ART = ("import os\n\ndef main(text: str = 'hi'):\n    out = os.environ['RUNYARD_OUTPUT_DIR']\n"
       "    os.makedirs(os.path.join(out, 'd'), exist_ok=True)\n"
       "    open(os.path.join(out, 'd', 'f.txt'), 'w').write(text)\n    return text\n")
UPPER = "def main(data: str) -> str:\n    return open(data).read().upper()\n"


def _deploy(cli: Invoke, tmp_path: Path, name: str, code: str) -> dict[str, Any]:
    f = tmp_path / f"{name}.py"
    f.write_text(code)
    r = cli("deploy", str(f), "--json")
    assert r.exit_code == 0, r.output
    return as_json(r)


def test_help() -> None:
    from typer.testing import CliRunner

    from runyard.cli.main import app

    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("login", "deploy", "run", "tools", "runs", "secrets", "tokens", "up", "server", "worker"):
        assert cmd in r.stdout


def test_deploy_table_and_json(cli: Invoke, tmp_path: Path, unique: str) -> None:
    f = tmp_path / f"adder_{unique}.py"
    f.write_text(ADD)
    req = tmp_path / "requirements.txt"
    req.write_text("# nothing needed\n\n")
    r = cli("deploy", str(f), "--description", "adds", "--requirements", str(req))
    assert r.exit_code == 0, r.output
    assert r.stdout == ""  # table mode talks on stderr for deploy
    assert f"adder_{unique}" in r.stderr and "version 1" in r.stderr
    r = cli("deploy", str(f), "--name", f"adder2-{unique}", "--public", "--timeout-s", "20", "--secret", "SEC_A",
            "--secret", "SEC_B", "--entrypoint", "main", "--memory-mb", "256", "--retries", "1", "--reuse-process", "--json")
    assert r.exit_code == 0, r.output
    tool = as_json(r)
    assert tool["name"] == f"adder2-{unique}" and tool["visibility"] == "public" and tool["timeout_s"] == 20
    assert tool["required_secrets"] == ["SEC_A", "SEC_B"]
    assert (tool["memory_mb"], tool["retries"], tool["entrypoint"]) == (256, 1, "main")
    assert tool["reuse_process"] is True
    # A run of a tool whose declared secret is missing is refused, naming it.
    r = cli("run", f"adder2-{unique}", "-i", "a=1")
    assert r.exit_code == 1 and "SEC_A" in r.stderr
    # Deploying changed code under the same name publishes version 2.
    f.write_text(ADD.replace("a + b", "b + a"))
    again = as_json(cli("deploy", str(f), "--name", f"adder2-{unique}", "--json"))
    assert again["version"] == 2 and again["reuse_process"] is True  # unchanged settings carry over
    fresh = as_json(cli("deploy", str(f), "--name", f"adder2-{unique}", "--fresh-process", "--json"))
    assert fresh["version"] == 3 and fresh["reuse_process"] is False


def test_tools_commands(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"tl-{unique}"
    tool = _deploy(cli, tmp_path, name, ADD)
    r = cli("tools", "list", "--search", unique)
    assert r.exit_code == 0 and name in r.stdout and tool["id"] in r.stdout
    listed = as_json(cli("tools", "list", "--search", unique, "--json"))
    assert [t["name"] for t in listed] == [name]
    r = cli("tools", "get", name)
    assert r.exit_code == 0 and tool["id"] in r.stdout
    assert as_json(cli("tools", "get", tool["id"], "--json"))["name"] == name
    r = cli("tools", "versions", name)
    assert r.exit_code == 0 and "VERSION" in r.stdout
    assert [v["version"] for v in as_json(cli("tools", "versions", name, "--json"))] == [1]
    assert as_json(cli("tools", "versions", name, "--version", "1", "--json"))["version"] == 1
    r = cli("tools", "delete", name)
    assert r.exit_code == 0 and "Deleted" in r.stderr
    r = cli("tools", "get", name)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "not_found" in r.stderr and "request_id: req_" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1  # one line
    r = cli("tools", "delete", name, "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "tool_not_found"


def test_run_modes(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"rn-{unique}"
    _deploy(cli, tmp_path, name, ADD)
    r = cli("run", name, "-i", "a=40")
    assert r.exit_code == 0, r.output
    assert r.stdout == "42\n" and "succeeded" in r.stderr
    r = cli("run", name, "--inputs", '{"a": 1, "b": 1}', "--json")
    run = as_json(r)
    assert r.exit_code == 0 and run["status"] == "succeeded" and run["output"] == 2
    inputs = tmp_path / "in.json"
    inputs.write_text('{"a": 5}')
    assert as_json(cli("run", name, "--inputs", f"@{inputs}", "-i", "b=5", "--json"))["output"] == 10
    assert as_json(cli("run", name, "--inputs", "@-", "--json", input='{"a": 7}'))["output"] == 9
    r = cli("run", name, "-i", "a=1", "--async", "--json")
    queued = as_json(r)
    assert r.exit_code == 0 and queued["id"].startswith("run_")
    r = cli("run", name, "-i", "a=1", "--async")
    assert r.exit_code == 0 and r.stdout.strip().startswith("run_")
    r = cli("run", name, "-i", "a=3", "--follow")
    assert r.exit_code == 0, r.output
    assert r.stdout == "adding 3 and 2\n5\n"  # logs live, then the output
    r = cli("run", name, "-i", "a=3", "--follow", "--json")
    assert as_json(r)["output"] == 5 and "adding 3 and 2" in r.stderr
    # A bad input is an API error (exit 1), not a failed run.
    r = cli("run", name, "-i", "a=notanumber")
    assert r.exit_code == 1 and "invalid_inputs" in r.stderr and "request_id" in r.stderr
    r = cli("run", name, "-i", "novalue")
    assert r.exit_code == 2


def test_failed_run_exit_code(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"fl-{unique}"
    _deploy(cli, tmp_path, name, FAIL)
    r = cli("run", name, "-i", "x=3")
    assert r.exit_code == 3
    assert r.stdout == ""
    assert "failed" in r.stderr and "bad x=3" in r.stderr
    r = cli("run", name, "--json")
    assert r.exit_code == 3
    run = as_json(r)
    assert run["status"] == "failed" and "bad x=1" in run["error"]["message"]
    r = cli("run", name, "--follow")
    assert r.exit_code == 3 and "about to fail" in r.stdout


def test_run_timeout_exit_code_and_cancel(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"sl-{unique}"
    _deploy(cli, tmp_path, name, SLEEP)
    r = cli("run", name, "--timeout", "0.5", "--json")
    assert r.exit_code == 4
    run = as_json(r)
    assert run["status"] in ("queued", "running")
    r = cli("runs", "cancel", run["id"], "--json")
    assert r.exit_code == 0 and as_json(r)["status"] in ("cancelled", "running")
    r = cli("runs", "wait", run["id"], "--timeout", "10")
    assert r.exit_code == 3 and "cancelled" in r.stderr
    r = cli("runs", "cancel", run["id"])
    assert r.exit_code == 0 and "cancelled" in r.stderr


def test_runs_commands(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"rs-{unique}"
    _deploy(cli, tmp_path, name, ADD)
    run = as_json(cli("run", name, "-i", "a=1", "-t", f"session={unique}", "--json"))
    r = cli("runs", "list", "--tool", name)
    assert r.exit_code == 0 and run["id"] in r.stdout and "succeeded" in r.stdout
    listed = as_json(cli("runs", "list", "--tool", name, "--status", "succeeded", "--limit", "5", "--json"))
    assert [x["id"] for x in listed] == [run["id"]]
    assert as_json(cli("runs", "list", "--session", unique, "--json"))[0]["id"] == run["id"]
    assert as_json(cli("runs", "list", "--tool", name, "--status", "failed", "--json")) == []
    by_cli = as_json(cli("runs", "list", "--tool", name, "--trigger", "cli", "--type", "tool", "--sort", "duration",
                         "--order", "asc", "--json"))
    assert [x["id"] for x in by_cli] == [run["id"]] and by_cli[0]["triggered_by"]
    assert as_json(cli("runs", "list", "--tool", name, "--triggered-by", by_cli[0]["triggered_by"],
                       "--ids", run["id"], "--json"))[0]["id"] == run["id"]
    assert as_json(cli("runs", "list", "--tool", name, "--trigger", "schedule", "--json")) == []
    assert as_json(cli("runs", "list", "--tool", name, "--offset", "1", "--json")) == []
    r = cli("runs", "list", "--tool", name, "--sort", "fastest")
    assert r.exit_code != 0 and "sort" in r.stderr
    r = cli("runs", "get", run["id"])
    assert r.exit_code == 0 and "succeeded" in r.stdout and '"a": 1' in r.stdout
    got = as_json(cli("runs", "get", run["id"], "--json"))
    assert got["inputs"] == {"a": 1} and got["output"] == 3
    r = cli("runs", "logs", run["id"])
    assert r.exit_code == 0 and r.stdout == "adding 1 and 2\n"
    r = cli("runs", "logs", run["id"], "-f")
    assert r.exit_code == 0 and r.stdout == "adding 1 and 2\n"
    assert as_json(cli("runs", "logs", run["id"], "--json"))["lines"] == ["adding 1 and 2"]
    assert as_json(cli("runs", "logs", run["id"], "-f", "--json"))["lines"] == ["adding 1 and 2"]
    r = cli("runs", "rerun", run["id"])
    assert r.exit_code == 0 and r.stdout.strip().startswith("run_") and r.stdout.strip() != run["id"]
    rerun = as_json(cli("runs", "rerun", run["id"], "--latest", "--json"))
    assert rerun["parent_run_id"] == run["id"]
    assert as_json(cli("runs", "wait", rerun["id"], "--json"))["output"] == 3
    r = cli("runs", "get", "run_doesnotexist")
    assert r.exit_code == 1 and "not_found" in r.stderr


def test_confirm_and_file_inputs(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"up-{unique}"
    _deploy(cli, tmp_path, name, UPPER)
    data = tmp_path / "data.txt"
    data.write_text("shout")
    r = cli("run", name, "-i", f"data=@{data}")
    assert r.exit_code == 0, r.output
    assert r.stdout == "SHOUT\n"
    held = as_json(cli("run", name, "-i", f"data=@{data}", "--requires-confirmation", "--json"))
    assert held["status"] == "awaiting_confirmation"
    r = cli("runs", "confirm", held["id"])
    assert r.exit_code == 0 and held["id"] in r.stderr
    assert as_json(cli("runs", "wait", held["id"], "--json"))["output"] == "SHOUT"
    held = as_json(cli("run", name, "-i", f"data=@{data}", "--requires-confirmation", "--json"))
    assert as_json(cli("runs", "confirm", held["id"], "--json"))["status"] != "awaiting_confirmation"


def test_artifacts(cli: Invoke, tmp_path: Path, unique: str) -> None:
    name = f"ar-{unique}"
    _deploy(cli, tmp_path, name, ART)
    run = as_json(cli("run", name, "-i", "text=payload", "--json"))
    r = cli("runs", "artifacts", run["id"])
    assert r.exit_code == 0 and "d/f.txt" in r.stdout
    listed = as_json(cli("runs", "artifacts", run["id"], "--json"))
    assert [a["path"] for a in listed["items"]] == ["d/f.txt"]
    dest = tmp_path / "out"
    r = cli("runs", "artifacts", run["id"], "--download", str(dest), "--json")
    assert r.exit_code == 0 and as_json(r)["downloaded"] == [str(dest / "d" / "f.txt")]
    assert (dest / "d" / "f.txt").read_text() == "payload"


def test_secrets(cli: Invoke, unique: str) -> None:
    name = f"CLI_SEC_{unique.upper()}"
    r = cli("secrets", "set", name, "--value", "s3cret-value-1")
    assert r.exit_code == 0 and name in r.stderr and "s3cret-value-1" not in r.output
    r = cli("secrets", "set", name, input="from-stdin-value\n")
    assert r.exit_code == 1 and "secret_exists" in r.stderr and "request_id" in r.stderr
    r = cli("secrets", "set", name, "--force", "--json", input="from-stdin-value\n")
    assert r.exit_code == 0 and as_json(r)["name"] == name and "from-stdin-value" not in r.stdout
    r = cli("secrets", "list")
    assert r.exit_code == 0 and name in r.stdout and "from-stdin-value" not in r.stdout
    assert name in [s["name"] for s in as_json(cli("secrets", "list", "--json"))]
    assert as_json(cli("secrets", "delete", name, "--json")) == {"deleted": name}
    r = cli("secrets", "delete", name)
    assert r.exit_code == 1 and "not_found" in r.stderr


def test_tokens(cli: Invoke, server: Any, unique: str, tmp_path: Path) -> None:
    r = cli("tokens", "create", f"t-{unique}", "--role", "viewer")
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    assert key and "not be shown again" in r.stderr
    with server.client() as api:  # a restriction names tools that exist (it is held by their ids)
        assert api.post("/tools", json={"name": f"x-{unique}", "code": ADD}).status_code in (200, 201)
    tok = as_json(cli("tokens", "create", f"t2-{unique}", "--role", "member", "--tool", f"x-{unique}", "--json"))
    assert tok["key"] and tok["restrictions"]["tools"] == [f"x-{unique}"]
    r = cli("tokens", "list")
    assert r.exit_code == 0 and tok["id"] in r.stdout and tok["key"] not in r.stdout
    ids = [t["id"] for t in as_json(cli("tokens", "list", "--json"))]
    assert tok["id"] in ids
    assert as_json(cli("tokens", "get", tok["id"], "--json"))["name"] == f"t2-{unique}"
    # The viewer key works for reads and is refused for writes (exit 1, 403 code).
    viewer_env: dict[str, str | None] = {"RUNYARD_API_KEY": key}
    assert cli("tools", "list", "--json", env=viewer_env).exit_code == 0
    f = tmp_path / "v.py"
    f.write_text(ADD)
    r = cli("deploy", str(f), env=viewer_env)
    assert r.exit_code == 1 and "insufficient_role" in r.stderr
    assert cli("tokens", "delete", tok["id"]).exit_code == 0
    r = cli("tokens", "delete", tok["id"], "--json")
    assert r.exit_code == 1 and as_json(r)["error"]["code"] == "token_not_found"
    r = cli("tokens", "create", "bad", "--role", "root")
    assert r.exit_code == 2


def test_login_profiles(cli: Invoke, server: Any, config_file: Path) -> None:
    r = cli("login", "--base-url", server.base_url, "--api-key", server.admin_key, "--profile", "work", auth=False)
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    stored = json.loads(config_file.read_text())
    assert stored["profiles"]["work"] == {"base_url": server.base_url, "api_key": server.admin_key}
    assert stored["current_profile"] == "work"
    # The stored profile is used when the environment carries no key.
    assert cli("tools", "list", "--json", auth=False).exit_code == 0
    # A wrong key is rejected by login's check, and nothing is stored.
    r = cli("login", "--base-url", server.base_url, "--profile", "bad", auth=False, input="wrong-key\n")
    assert r.exit_code == 1 and "invalid_api_key" in r.stderr
    assert "bad" not in json.loads(config_file.read_text())["profiles"]
    r = cli("login", "--base-url", "http://127.0.0.1:9", "--api-key", "k", "--profile", "other", "--no-verify",
            "--json", auth=False)
    assert r.exit_code == 0 and as_json(r)["profile"] == "other"
    # --profile / RUNYARD_PROFILE select among stored profiles.
    r = cli("--profile", "work", "tools", "list", "--json", auth=False)
    assert r.exit_code == 0
    r = cli("tools", "list", auth=False, env={"RUNYARD_PROFILE": "other"})
    assert r.exit_code == 1 and "Connection" in r.stderr
    # The environment beats the profile.
    assert cli("tools", "list", "--json", env={"RUNYARD_PROFILE": "other"}).exit_code == 0
    assert as_json(cli("logout", "--profile", "other", "--json", auth=False)) == {"profile": "other", "removed": True}


def test_missing_key_is_a_clear_error(cli: Invoke) -> None:
    r = cli("tools", "list", auth=False)
    assert r.exit_code == 1
    assert "runyard login" in r.stderr and "RUNYARD_API_KEY" in r.stderr

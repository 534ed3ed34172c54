"""What a new user meets in the first hour: flags, hints, exit codes and streams of the CLI
(issue 14), against the shared loopback server."""

from __future__ import annotations

import copy
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from runyard.cli.generate import RowCounter
from runyard.cli.main import app
from tests.support.cli import Invoke, as_json
from tests.support.synth import CUSTOMERS

CLI = [sys.executable, "-m", "runyard.cli.main"]
# Commands that serve (a node, or MCP over stdio) rather than answer once: no --json.
SERVER_COMMANDS = {"up", "server", "worker", "mcp"}


def _env(server: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_BASE_URL=server.base_url, RUNYARD_API_KEY=server.admin_key,
               RUNYARD_CONFIG=str(tmp_path / "cfg.json"), COLUMNS="120", **extra)
    return env


def _template(cli: Invoke, tmp_path: Path, name: str) -> str:
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(dict(copy.deepcopy(CUSTOMERS), name=name)))
    created = cli("templates", "create", str(spec), "--json")
    assert created.exit_code == 0, created.output
    return as_json(created)["id"]


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            out += _commands(command, (*prefix, name))
        else:
            out.append(((*prefix, name), command))
    return out


def test_every_client_command_has_json() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 30
    missing = [" ".join(path) for path, command in commands
               if path[0] not in SERVER_COMMANDS and not any("--json" in p.opts for p in command.params)]
    assert missing == []


def test_json_on_templates_and_sets(cli: Invoke, tmp_path: Path, unique: str) -> None:
    tid = _template(cli, tmp_path, f"js_{unique}")
    preview = cli("templates", "preview", tid, "--seed", "4", "--json")
    assert preview.exit_code == 0 and len(as_json(preview)["rows"]) == 3 and as_json(preview)["seed"] == 4
    table = cli("templates", "preview", tid, "--seed", "4")
    assert table.exit_code == 0 and "seed 4" in table.stderr and "EMAIL" in table.stdout
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"k": "a"}, {"k": "b"}]))
    assert cli("sets", "save", f"s_{unique}", str(rows)).exit_code == 0
    got = cli("sets", "get", f"s_{unique}", "--json")
    assert as_json(got)["rows"] == [{"k": "a"}, {"k": "b"}]
    shown = cli("sets", "get", f"s_{unique}")
    assert "2 rows" in shown.stderr and "K" in shown.stdout
    assert as_json(cli("sets", "delete", f"s_{unique}", "--json")) == {"deleted": f"s_{unique}"}
    assert as_json(cli("templates", "delete", tid, "--json")) == {"deleted": tid}


def test_an_unchanged_update_says_so(cli: Invoke, tmp_path: Path, unique: str) -> None:
    tid = _template(cli, tmp_path, f"same_{unique}")
    again = cli("templates", "update", tid, str(tmp_path / f"same_{unique}.json"))
    assert again.exit_code == 0 and "unchanged: still version 1" in again.stderr


def test_generate_prints_the_seed_and_usage_errors_exit_2(cli: Invoke, tmp_path: Path, unique: str) -> None:
    tid = _template(cli, tmp_path, f"gen_{unique}")
    drawn = cli("generate", tid, "-n", "3")
    assert drawn.exit_code == 0 and len(drawn.stdout.splitlines()) == 4
    seed = drawn.stderr.split("seed ", 1)[1].split(",")[0]
    assert f"--seed {seed} reproduces" in drawn.stderr
    assert cli("generate", tid, "-n", "3", "--seed", seed).stdout == drawn.stdout
    assert cli("generate", tid, "-f", "xml").exit_code == 2
    assert cli("generate", tid, "--set", "oops").exit_code == 2
    assert cli("generate", tid, "--json").exit_code == 2  # the rows would need stdout
    out = tmp_path / "g.csv"
    summary = cli("generate", tid, "-n", "20", "--seed", "7", "-o", str(out), "--json", "--timeout", "30")
    assert summary.exit_code == 0, summary.output
    assert as_json(summary) == {"path": str(out), "format": "csv", "rows": 20, "bytes": out.stat().st_size,
                                "seed": 7, "template_version": 1}


def test_generate_into_a_closed_pipe_ends_quietly(server: Any, cli: Invoke, tmp_path: Path, unique: str) -> None:
    tid = _template(cli, tmp_path, f"pipe_{unique}")
    proc = subprocess.Popen([*CLI, "generate", tid, "-n", "5000000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(server, tmp_path))
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # `| head -3`
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert lines[0].startswith(b'"id"') and proc.returncode == 0, err
    assert b"Broken pipe" not in err and b"Traceback" not in err and b"seed " in err


def test_generate_progress_shows_rows_percent_and_eta(server: Any, cli: Invoke, tmp_path: Path,
                                                      unique: str) -> None:
    tid = _template(cli, tmp_path, f"bar_{unique}")
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, "generate", tid, "-n", "3000000", "-o", str(tmp_path / "big.csv")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=_env(server, tmp_path, TERM="xterm"))
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    proc.wait(30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "/3,000,000 rows" in text and "%" in text and "Wrote 3,000,000 rows" in text


def test_row_counter_counts_rows_of_line_formats(tmp_path: Path) -> None:
    counts: list[int] = []
    with (tmp_path / "x").open("wb") as fh:
        sink = RowCounter(fh, "csv", 3, counts.append)
        sink.write(b'"a"\n1\n')
        sink.write(b"2\n3\n")
    assert counts == [1, 3]


def test_secrets_conflict_names_the_flag(cli: Invoke, unique: str) -> None:
    assert cli("secrets", "set", f"S_{unique}", "--value", "one").exit_code == 0
    again = cli("secrets", "set", f"S_{unique}", "--value", "two")
    assert again.exit_code == 1 and "--force" in again.stderr and "force=true" not in again.stderr
    assert cli("secrets", "set", f"S_{unique}", "--value", "two", "--force").exit_code == 0


def test_connection_refused_names_the_url_and_the_fix(cli: Invoke, unique: str) -> None:
    from tests.support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = cli("tools", "list", env={"RUNYARD_BASE_URL": url})
    assert result.exit_code == 1
    assert url in result.stderr and "is the server running?" in result.stderr
    assert "ConnectError(" not in result.stderr


def test_login_without_a_key_says_where_the_admin_key_is(cli: Invoke) -> None:
    result = cli("login", "--no-verify", input="", auth=False)
    assert result.exit_code == 1 and "admin-key" in result.stderr


def test_run_async_says_what_next(cli: Invoke, tmp_path: Path, unique: str) -> None:
    tool = tmp_path / f"slow_{unique}.py"
    tool.write_text("import time\n\ndef main() -> int:\n    time.sleep(0.5)\n    return 1\n")
    assert cli("deploy", str(tool)).exit_code == 0
    started = cli("run", f"slow_{unique}", "--async")
    run_id = started.stdout.strip()
    assert run_id.startswith("run_") and f"runyard runs wait {run_id}" in started.stderr


def test_deploy_a_file_with_one_function(cli: Invoke, tmp_path: Path, unique: str) -> None:
    greet = tmp_path / f"greet_{unique}.py"
    greet.write_text('def greet(name: str) -> str:\n    """Say hello to someone.\n\n    Args:\n'
                     '        name: who to greet\n    """\n    return "hello " + name\n')
    deployed = cli("deploy", str(greet), "--json")
    assert deployed.exit_code == 0, deployed.output
    tool = as_json(deployed)
    assert tool["entrypoint"] == "greet" and tool["description"] == "Say hello to someone."
    assert cli("run", f"greet_{unique}", "-i", "name=ada").stdout.strip() == "hello ada"

    two = tmp_path / f"two_{unique}.py"
    two.write_text("def a() -> int:\n    return 1\n\ndef b() -> int:\n    return 2\n\ndef _helper() -> None:\n    pass\n")
    refused = cli("deploy", str(two))
    assert refused.exit_code == 2
    assert "a, b" in refused.stderr and "--entrypoint a" in refused.stderr
    assert cli("deploy", str(two), "--entrypoint", "b").exit_code == 0


def test_the_api_names_a_files_functions_when_main_is_missing(server: Any, unique: str) -> None:
    with server.client() as api:
        resp = api.post("/tools", json={"name": f"nomain_{unique}", "code": "def a():\n    return 1\n"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "entrypoint_not_found" and error["details"]["functions"] == ["a"]
    assert "--entrypoint a" in error["message"]


def test_up_on_a_busy_port_starts_nothing(server: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_PORT=str(server.port), RUNYARD_DATA_DIR=str(data))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "runyard.cli.serve", "up"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "already in use" in result.stderr
    assert "worker" not in result.stderr.replace("runyard worker", "") and "Traceback" not in result.stderr
    assert not data.exists()  # no database, no key, no worker: nothing was started
    assert time.monotonic() - started < 30


def test_root_points_at_the_docs_and_the_cli(server: Any) -> None:
    as_data = httpx.get(server.base_url + "/")
    assert as_data.status_code == 200
    body = as_data.json()
    assert body["docs"].endswith("/docs") and any("runyard login" in line for line in body["cli"])
    browser = httpx.get(server.base_url + "/", headers={"Accept": "text/html"})
    assert browser.status_code == 307 and browser.headers["location"] == "/ui"  # a browser: the web UI
    page = httpx.get(server.base_url + "/?page=about", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "/docs" in page.text and "runyard login" in page.text


def test_the_server_writes_an_access_log(server: Any) -> None:
    rid = f"req-access-{time.monotonic_ns()}"
    httpx.get(server.base_url + "/healthz", headers={"X-Request-ID": rid})
    deadline = time.monotonic() + 5
    while rid not in server.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in server.logs().splitlines() if rid in line)
    assert "GET /healthz 200" in line and "ms" in line


def test_access_log_can_be_off_or_in_a_file(tmp_path: Path) -> None:
    import asyncio

    from runyard.api.accesslog import AccessLog, access_log

    async def hello(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    assert access_log(hello, "off") is hello
    path = tmp_path / "access.log"
    wrapped = access_log(hello, str(path))
    assert isinstance(wrapped, AccessLog)

    async def send(message: dict) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"a=1", "state": {"request_id": "r1"}}
    asyncio.run(wrapped(scope, None, send))
    assert "GET /x?a=1 204" in path.read_text() and "r1" in path.read_text()


def test_synth_in_a_client_only_install_names_the_extra() -> None:
    from tests.support.cli import run_blocked

    result = run_blocked("from runyard import synth\n")
    assert result.returncode == 1
    assert "pip install 'runyard[server]'" in result.stderr and "runyard.synth needs" in result.stderr


@pytest.mark.parametrize("args", [["tools", "list", "--json"], ["generate", "x", "-n", "1"]])
def test_a_missing_key_says_where_the_admin_key_is(cli: Invoke, args: list[str]) -> None:
    result = cli(*args, auth=False)
    assert result.exit_code == 1 and "admin-key" in result.stderr

"""Stdio MCP servers (a ``command`` connection, services.mcp_stdio): verify starts the command
confined and lists its tools; execute calls one in a server process the worker starts on
demand and shares between calls, stops when idle and starts again; the process cannot read
the data dir nor open a socket (network off by default); a secret env value reaches it; a
server that dies mid-call fails the run with mcp_server_error and marks the connection."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import Server

SCRIPT = Path(__file__).with_name("stdio_test_server.py")


def connect(admin: httpx.Client, **config: Any) -> str:
    name = f"stdio{uuid.uuid4().hex[:6]}"
    made = admin.post("/connections", json={"name": name, "type": "mcp", "config": {
        "command": [sys.executable, str(SCRIPT)], **config}})
    assert made.status_code == 201, made.text
    status = admin.post(f"/connections/{name}/verify").json()["status"]
    assert status["state"] == "ok", status
    return name


def execute(admin: httpx.Client, alias: str, parameters: dict[str, Any]) -> dict[str, Any]:
    response = admin.post(f"/mcp-tools/{alias}/execute", params={"wait": 60}, json={"parameters": parameters})
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def test_verify_lists_the_tools_and_calls_share_one_process(admin: httpx.Client):
    name = connect(admin)
    aliases = {t["alias"] for t in admin.get("/mcp-tools").json()["items"]}
    assert {f"mcp_{name}_add", f"mcp_{name}_pid", f"mcp_{name}_die"} <= aliases
    run = execute(admin, f"mcp_{name}_add", {"a": 2, "b": 40})
    assert run["status"] == "succeeded" and run["output"] == {"total": 42}, run
    first = execute(admin, f"mcp_{name}_pid", {})["output"]["pid"]
    second = execute(admin, f"mcp_{name}_pid", {})["output"]["pid"]
    assert first == second


def test_an_idle_server_stops_and_the_next_call_starts_another(admin: httpx.Client):
    name = connect(admin, idle_timeout_s=1)
    first = execute(admin, f"mcp_{name}_pid", {})["output"]["pid"]
    time.sleep(3.5)
    again = execute(admin, f"mcp_{name}_pid", {})
    assert again["status"] == "succeeded" and again["output"]["pid"] != first, again


def test_the_process_is_confined_and_gets_its_secret_env(client_server: Server, admin: httpx.Client):
    key_file = client_server.data_dir / "signing-key"
    assert key_file.exists()
    name = connect(admin, env={"SERVICE_TOKEN": "tok-" + uuid.uuid4().hex})
    read = execute(admin, f"mcp_{name}_read", {"path": str(key_file)})
    assert read["status"] == "succeeded" and str(read["output"]["result"]).startswith("refused"), read
    sock = execute(admin, f"mcp_{name}_open_socket", {})
    assert str(sock["output"]["result"]).startswith("refused"), sock
    home = execute(admin, f"mcp_{name}_write_home", {})
    assert home["status"] == "succeeded", home
    assert not str(home["output"]["result"]).startswith(str(client_server.data_dir)), home
    token = execute(admin, f"mcp_{name}_env", {"name": "SERVICE_TOKEN"})
    assert token["status"] == "succeeded" and token["output"]["result"] == "***", token  # redacted when stored
    view = admin.get(f"/connections/{name}").json()
    assert "tok-" not in str(view)


def test_network_on_lets_it_open_sockets(admin: httpx.Client):
    name = connect(admin, network=True)
    assert execute(admin, f"mcp_{name}_open_socket", {})["output"]["result"] == "made"


def test_a_server_that_dies_mid_call_fails_the_run_and_the_next_call_restarts_it(admin: httpx.Client):
    name = connect(admin)
    before = execute(admin, f"mcp_{name}_pid", {})["output"]["pid"]
    run = execute(admin, f"mcp_{name}_die", {})
    assert run["status"] == "failed" and run["error"]["type"] == "mcp_server_error", run
    status = admin.get(f"/connections/{name}").json()["status"]
    assert status["state"] == "failed" and "mcp_server_error" in status["error"], status
    after = execute(admin, f"mcp_{name}_pid", {})
    assert after["status"] == "succeeded" and after["output"]["pid"] != before, after
    assert admin.get(f"/connections/{name}").json()["status"]["state"] == "ok"


def test_a_hanging_call_times_out(admin: httpx.Client):
    name = connect(admin, call_timeout_s=1)
    started = time.monotonic()
    run = execute(admin, f"mcp_{name}_slow", {"seconds": 20})
    assert run["status"] == "failed" and run["error"]["type"] == "mcp_timeout", run
    assert time.monotonic() - started < 15
    status = admin.get(f"/connections/{name}").json()["status"]
    assert status["state"] == "failed" and "mcp_timeout" in status["error"], status


def test_bad_stdio_config_is_refused_and_a_missing_program_fails_verify(admin: httpx.Client):
    for config in ({"command": [sys.executable], "network": "yes"}, {"command": [sys.executable], "env": ["A"]},
                   {"command": [sys.executable], "idle_timeout_s": 0},
                   {"url": "http://127.0.0.1:9/mcp", "network": True}):
        made = admin.post("/connections", json={"name": f"bad{uuid.uuid4().hex[:6]}", "type": "mcp", "config": config})
        assert made.status_code == 400 and made.json()["error"]["code"] == "validation_error", made.text
    name = f"gone{uuid.uuid4().hex[:6]}"
    assert admin.post("/connections", json={"name": name, "type": "mcp", "config": {
        "command": ["/nonexistent/mcp-server"]}}).status_code == 201
    status = admin.post(f"/connections/{name}/verify").json()["status"]
    assert status["state"] == "failed" and status["error"], status


def test_context_mcp_call_reaches_the_stdio_server_through_the_worker(admin: httpx.Client):
    from tests.mcp_client.test_mcp_in_runs import CALLER
    from tests.support.api import deploy, run

    name = connect(admin, env={"SERVICE_TOKEN": "tok-" + uuid.uuid4().hex})
    tool = f"calls-stdio-{uuid.uuid4().hex[:6]}"
    deploy(admin, tool, CALLER, mcp_server_names=[name])
    done = run(admin, tool, {"alias": f"mcp_{name}_add", "params": {"a": 1, "b": 2}}, wait=60)
    assert done["status"] == "succeeded" and done["output"]["result"] == {"total": 3}, done
    assert "tok-" not in done["output"]["env"]
    # the same server process answers execute and the run's calls
    pid = execute(admin, f"mcp_{name}_pid", {})["output"]["pid"]
    again = run(admin, tool, {"alias": f"mcp_{name}_pid", "params": {}}, wait=60)
    assert again["output"]["result"] == {"pid": pid}, again

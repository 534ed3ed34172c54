"""runyard as an MCP client: a verified mcp connection's tools by alias (GET /mcp-tools) and
runs of them (POST /mcp-tools/{alias}/execute): output, a tool's error, a hanging server
(mcp_timeout), a server killed mid-call (mcp_server_error), the connection's status, a
header secret that reaches the server but not the run, who may list and execute."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.mcp_client.conftest import McpTestServer
from tests.support.servers import Server

TOKEN = "Bearer s3cr3t-mcp-" + uuid.uuid4().hex


def connect(admin: httpx.Client, server: McpTestServer, **config: Any) -> str:
    name = f"srv{uuid.uuid4().hex[:6]}"
    made = admin.post("/connections", json={"name": name, "type": "mcp", "config": {
        "url": server.url, "headers": {"Authorization": TOKEN}, **config}})
    assert made.status_code == 201, made.text
    status = admin.post(f"/connections/{name}/verify").json()["status"]
    assert status["state"] == "ok", status
    return name


def execute(client: httpx.Client, alias: str, parameters: dict[str, Any]) -> httpx.Response:
    return client.post(f"/mcp-tools/{alias}/execute", params={"wait": 60}, json={"parameters": parameters})


def test_verified_tools_are_listed_by_alias_and_executed_as_runs(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    listed = admin.get("/mcp-tools")
    assert listed.status_code == 200, listed.text
    mine = {t["alias"]: t for t in listed.json()["items"] if t["server"] == name}
    assert set(mine) == {f"mcp_{name}_{tool}" for tool in ("add", "slow", "boom", "die", "whoami")}
    add = mine[f"mcp_{name}_add"]
    assert add["name"] == "add" and add["description"] == "Add two integers."
    assert add["input_schema"]["properties"]["a"]["type"] == "integer"

    run = execute(admin, f"mcp_{name}_add", {"a": 2, "b": 40})
    assert run.status_code == 201, run.text
    body = run.json()
    assert body["status"] == "succeeded" and body["output"] == {"total": 42}, body
    assert body["type"] == "mcp_tool" and body["trigger"] == "mcp" and body["tool_name"] == f"mcp_{name}_add"
    again = admin.get(f"/runs/{body['id']}").json()
    assert again["status"] == "succeeded" and again["output"] == {"total": 42}
    logs = admin.get(f"/runs/{body['id']}/logs").text
    assert "calling add" in logs and "done in" in logs
    assert any(r["id"] == body["id"] for r in admin.get("/runs", params={"type": "mcp_tool"}).json()["items"])

    failed = execute(admin, f"mcp_{name}_boom", {}).json()
    assert failed["status"] == "failed" and failed["error"]["type"] == "mcp_tool_error", failed
    assert "boom went the tool" in failed["error"]["message"]
    # A tool's own error is an answer: the server is fine.
    assert admin.get(f"/connections/{name}").json()["status"]["state"] == "ok"


def test_an_sse_server_is_verified_and_executed_like_a_streamable_one(admin: httpx.Client) -> None:
    server = McpTestServer("sse").start()
    try:
        name = connect(admin, server, transport="sse")
        run = execute(admin, f"mcp_{name}_add", {"a": 1, "b": 2}).json()
        assert run["status"] == "succeeded" and run["output"] == {"total": 3}, run
        whoami = execute(admin, f"mcp_{name}_whoami", {}).json()
        assert whoami["status"] == "succeeded" and "s3cr3t" not in str(whoami["output"]), whoami  # redacted
    finally:
        server.stop()


def test_unknown_alias_and_bad_parameters_change_nothing(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    before = len(admin.get("/runs", params={"type": "mcp_tool", "limit": 200}).json()["items"])
    missing = admin.post(f"/mcp-tools/mcp_{name}_nope/execute", json={"parameters": {}})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "mcp_tool_not_found", missing.text
    bad = admin.post(f"/mcp-tools/mcp_{name}_add/execute", json={"parameters": [1, 2]})
    assert bad.status_code == 400, bad.text
    extra = admin.post(f"/mcp-tools/mcp_{name}_add/execute", json={"parameters": {}, "other": 1})
    assert extra.status_code == 400, extra.text
    assert len(admin.get("/runs", params={"type": "mcp_tool", "limit": 200}).json()["items"]) == before


def test_a_hanging_server_times_out_and_its_status_says_so(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server, call_timeout_s=1.5)
    run = execute(admin, f"mcp_{name}_slow", {"seconds": 30}).json()
    assert run["status"] == "failed" and run["error"]["type"] == "mcp_timeout", run
    status = admin.get(f"/connections/{name}").json()["status"]
    assert status["state"] == "failed" and status["error"].startswith("mcp_timeout"), status
    # The server still works: a good call marks the connection ok again.
    assert execute(admin, f"mcp_{name}_add", {"a": 1, "b": 1}).json()["output"] == {"total": 2}
    assert admin.get(f"/connections/{name}").json()["status"]["state"] == "ok"


def test_a_server_that_dies_mid_call_fails_the_run_with_the_reason(admin: httpx.Client,
                                                                   mcp_server: McpTestServer):
    name = connect(admin, mcp_server, call_timeout_s=20)
    run = execute(admin, f"mcp_{name}_die", {}).json()
    assert run["status"] == "failed" and run["error"]["type"] in ("mcp_server_error", "mcp_timeout"), run
    assert run["error"]["type"] == "mcp_server_error", run
    assert run["error"]["message"].startswith("the MCP server failed"), run
    status = admin.get(f"/connections/{name}").json()["status"]
    assert status["state"] == "failed" and "mcp_server_error" in status["error"], status
    # Nothing listens any more: the next call fails the same way, quickly.
    again = execute(admin, f"mcp_{name}_add", {"a": 1, "b": 1}).json()
    assert again["status"] == "failed" and again["error"]["type"] == "mcp_server_error", again


def test_the_header_secret_reaches_the_server_but_not_the_run(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    run = execute(admin, f"mcp_{name}_whoami", {}).json()
    # The server was sent the header (it answers it, stored as *** once the secret is scrubbed:
    # what a run stores never holds a secret value, even quoted back by the server).
    assert run["status"] == "succeeded" and run["output"] == {"result": "***"}, run
    assert TOKEN not in admin.get(f"/runs/{run['id']}", params={"expand": "inputs"}).text
    assert TOKEN.split()[1] not in admin.get(f"/runs/{run['id']}/logs").text
    assert TOKEN.split()[1] not in admin.get(f"/connections/{name}").text
    assert TOKEN.split()[1] not in admin.get("/mcp-tools").text


def test_members_execute_viewers_do_not_and_only_admins_manage(client_server: Server, admin: httpx.Client,
                                                               mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    member_key = admin.post("/tokens", json={"name": f"member-{name}", "role": "member"}).json()["key"]
    viewer_key = admin.post("/tokens", json={"name": f"viewer-{name}", "role": "viewer"}).json()["key"]
    with client_server.client(member_key, timeout=60) as member:
        assert any(t["server"] == name for t in member.get("/mcp-tools").json()["items"])
        run = execute(member, f"mcp_{name}_add", {"a": 3, "b": 4}).json()
        assert run["status"] == "succeeded" and run["output"] == {"total": 7}, run
        refused = member.post("/connections", json={"name": f"m{name}", "type": "mcp",
                                                     "config": {"url": mcp_server.url}})
        assert refused.status_code == 403, refused.text
        assert member.post(f"/connections/{name}/verify").status_code == 403
    with client_server.client(viewer_key) as viewer:
        assert viewer.get("/mcp-tools").status_code == 403
        assert viewer.post(f"/mcp-tools/mcp_{name}_add/execute", json={"parameters": {}}).status_code == 403


def test_sdk_sync_and_async_and_cli(client_server: Server, admin: httpx.Client, mcp_server: McpTestServer):
    import asyncio
    import json

    from typer.testing import CliRunner

    from runyard.cli.main import app
    from runyard.sdk import AsyncClient, Client
    from runyard.sdk.errors import RunFailedError

    name = connect(admin, mcp_server)
    alias = f"mcp_{name}_add"
    with Client(api_key=client_server.admin_key, base_url=client_server.base_url, timeout=60) as client:
        tools = {t.alias: t for t in client.mcp_tools.list()}
        assert tools[alias].server == name and tools[alias].name == "add"
        run = client.mcp_tools.execute(alias, {"a": 5, "b": 6})
        assert run.status == "succeeded" and run.output == {"total": 11} and run.type == "mcp_tool"
        failed = client.mcp_tools.execute(f"mcp_{name}_boom", {})
        assert failed.status == "failed" and failed.error is not None and failed.error.type == "mcp_tool_error"
        try:
            client.mcp_tools.execute(f"mcp_{name}_boom", raise_on_failure=True)
            raise AssertionError("a failed run is raised when asked")
        except RunFailedError:
            pass

    async def use_async() -> None:
        async with AsyncClient(api_key=client_server.admin_key, base_url=client_server.base_url, timeout=60) as ac:
            assert any(t.alias == alias for t in await ac.mcp_tools.list())
            run = await ac.mcp_tools.execute(alias, {"a": 1, "b": 2})
            assert run.output == {"total": 3}

    asyncio.run(use_async())

    env = {"RUNYARD_API_KEY": client_server.admin_key, "RUNYARD_BASE_URL": client_server.base_url}
    runner = CliRunner()
    listed = runner.invoke(app, ["mcp-tools", "ls", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert alias in {t["alias"] for t in json.loads(listed.stdout)}
    done = runner.invoke(app, ["mcp-tools", "exec", alias, "--params", '{"a": 20, "b": 22}'], env=env)
    assert done.exit_code == 0 and '"total": 42' in done.stdout, done.output
    bad = runner.invoke(app, ["mcp-tools", "exec", f"mcp_{name}_boom"], env=env)
    assert bad.exit_code == 1 and "mcp_tool_error" in bad.output, bad.output


def test_deploy_checks_expected_tools_against_the_declared_servers(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    tool = f"uses-mcp-{uuid.uuid4().hex[:6]}"
    code = "def main() -> int:\n    return 1\n"
    made = admin.post("/tools", json={"name": tool, "code": code, "mcp_server_names": [name],
                                      "expected_tools": [f"mcp_{name}_add", f"mcp_{name}_boom"]})
    assert made.status_code in (200, 201), made.text
    body = made.json()
    assert body["mcp_server_names"] == [name] and body["expected_tools"] == [f"mcp_{name}_add", f"mcp_{name}_boom"]

    missing = admin.post("/tools", json={"name": f"{tool}-b", "code": code, "mcp_server_names": [name],
                                         "expected_tools": [f"mcp_{name}_add", f"mcp_{name}_nope"]})
    assert missing.status_code == 400, missing.text
    error = missing.json()["error"]
    assert error["code"] == "mcp_tools_missing" and error["details"]["missing"] == [f"mcp_{name}_nope"], error
    # An alias of a server the tool does not declare does not count.
    undeclared = admin.post("/tools", json={"name": f"{tool}-c", "code": code,
                                            "expected_tools": [f"mcp_{name}_add"]})
    assert undeclared.status_code == 400 and undeclared.json()["error"]["code"] == "mcp_tools_missing"
    assert admin.get(f"/tools/{tool}-b").status_code == 404 and admin.get(f"/tools/{tool}-c").status_code == 404
    # An update is checked the same way, against the servers the tool declares.
    changed = admin.patch(f"/tools/{tool}", json={"expected_tools": [f"mcp_{name}_whoami"]})
    assert changed.status_code == 200 and changed.json()["expected_tools"] == [f"mcp_{name}_whoami"], changed.text
    refused = admin.patch(f"/tools/{tool}", json={"expected_tools": ["mcp_other_add"]})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "mcp_tools_missing"


def test_a_changed_config_drops_the_listed_tools_until_verified_again(admin: httpx.Client,
                                                                      mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    assert any(t["server"] == name for t in admin.get("/mcp-tools").json()["items"])
    changed = admin.patch(f"/connections/{name}", json={"config": {"call_timeout_s": 5}})
    assert changed.status_code == 200, changed.text
    assert not any(t["server"] == name for t in admin.get("/mcp-tools").json()["items"])
    missing = admin.post(f"/mcp-tools/mcp_{name}_add/execute", json={"parameters": {"a": 1, "b": 1}})
    assert missing.status_code == 404
    assert admin.post(f"/connections/{name}/verify").json()["status"]["state"] == "ok"
    assert execute(admin, f"mcp_{name}_add", {"a": 1, "b": 1}).json()["output"] == {"total": 2}

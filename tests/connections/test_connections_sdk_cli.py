"""``client.connections`` (sync and async) and ``runyard connections ls|add|show|verify|
metadata|rm`` against the real server and a loopback OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner

from runyard.cli.main import app
from runyard.sdk import AsyncClient, Client
from runyard.sdk.errors import NotFoundError, RunyardError
from tests.connections.conftest import Documents
from tests.support.servers import Server

DOC = {"openapi": "3.0.0", "info": {"title": "T", "version": "1"},
       "paths": {"/items": {"get": {"operationId": "listItems"}}}}
TOKEN = "sdk-cli-token-5521aa90"


def test_sdk_create_verify_metadata_update_delete(conn_server: Server, docs: Documents):
    docs.routes["/sdk/openapi.json"] = (200, {"Content-Type": "application/json"}, json.dumps(DOC).encode())
    name = f"sdk-{uuid.uuid4().hex[:6]}"
    with Client(api_key=conn_server.admin_key, base_url=conn_server.base_url, timeout=60) as client:
        made = client.connections.create(name, "openapi", {"base_url": f"{docs.base_url}/sdk",
                                                            "auth": {"type": "bearer", "token": TOKEN}})
        assert made.status.state == "unknown" and made.config["auth"]["token"]["set"] is True
        checked = client.connections.verify(name)
        assert checked.status.state == "ok" and checked.status.latency_ms is not None
        meta = client.connections.metadata(made.id)
        assert [o["operation_id"] for o in meta.metadata["operations"]] == ["listItems"]
        assert any(c.name == name for c in client.connections.list(type="openapi"))
        tool = client.tools.deploy("def main():\n    return 1\n", name=f"{name}-tool", connections=[name])
        assert tool.connections == [name]
        assert client.tools.update(tool.name, connections=[]).connections == []
        renamed = client.connections.update(name, name=f"{name}-b", config={"timeout_s": 5})
        assert renamed.name == f"{name}-b" and renamed.config["timeout_s"] == 5
        with pytest.raises(RunyardError) as caught:
            client.connections.create(f"{name}-x", "http", {"base_url": "http://169.254.169.254/"})
        assert caught.value.code == "outbound_host_refused"
        client.connections.delete(f"{name}-b")
        with pytest.raises(NotFoundError):
            client.connections.get(f"{name}-b")

    async def main() -> None:
        async with AsyncClient(api_key=conn_server.admin_key, base_url=conn_server.base_url, timeout=60) as aclient:
            made = await aclient.connections.create(f"{name}-a", "http", {"base_url": docs.base_url})
            checked = await aclient.connections.verify(made.id)
            assert checked.status.state == "ok"
            assert f"{name}-a" in [c.name async for c in aclient.connections.list()]
            await aclient.connections.delete(made.id)

    asyncio.run(main())


def test_cli_add_ls_show_verify_metadata_rm(conn_server: Server, docs: Documents, tmp_path):
    docs.routes["/cli/openapi.json"] = (200, {"Content-Type": "application/json"}, json.dumps(DOC).encode())
    runner = CliRunner()
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": conn_server.base_url, "RUNYARD_API_KEY": conn_server.admin_key}

    def cli(*args: str):
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    name = f"cli-{uuid.uuid4().hex[:6]}"
    added = cli("connections", "add", name, "--type", "openapi", "--set", f"base_url={docs.base_url}/cli",
                "--set", "auth.type=bearer", "--set", f"auth.token={TOKEN}", "--verify")
    assert added.exit_code == 0, added.output
    assert "ok" in added.output and TOKEN not in added.output
    listed = cli("connections", "ls", "--json")
    assert listed.exit_code == 0 and any(c["name"] == name for c in json.loads(listed.output))
    shown = cli("connections", "show", name)
    assert shown.exit_code == 0 and "connection_" in shown.output and TOKEN not in shown.output
    meta = cli("connections", "metadata", name)
    assert meta.exit_code == 0 and "listItems" in meta.output, meta.output
    down = cli("connections", "add", f"{name}-down", "--type", "http", "--config",
               json.dumps({"base_url": "http://127.0.0.1:9", "timeout_s": 1}))
    assert down.exit_code == 0, down.output
    failed = cli("connections", "verify", f"{name}-down")
    assert failed.exit_code == 1 and "unreachable" in failed.output
    source = tmp_path / "uses_conn.py"
    source.write_text("def main():\n    return 1\n")
    deployed = cli("deploy", str(source), "--name", f"{name}-tool", "--connection", name, "--json")
    assert deployed.exit_code == 0 and json.loads(deployed.output)["connections"] == [name], deployed.output
    assert cli("connections", "rm", name).exit_code == 0
    assert cli("connections", "rm", f"{name}-down").exit_code == 0
    assert cli("connections", "show", name).exit_code != 0

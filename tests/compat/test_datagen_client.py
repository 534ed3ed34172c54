"""``runyard.compat.datagen.DatagenClient`` against a real server: script-mode custom tools
(deploy, rename, update, get, list), their runs (sync, async, execution_timeout, the status
words), secrets, ``execute_tool`` and the six error classes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import get_args

import httpx
import pytest

from runyard.compat.datagen import (
    STATUS_OF,
    DatagenAuthError,
    DatagenClient,
    DatagenDeploymentError,
    DatagenError,
    DatagenHttpError,
    DatagenSecretError,
    DatagenToolError,
    datagen_status,
)
from runyard.schemas.runs import RunStatus
from tests.compat import datagen_support
from tests.compat.datagen_support import connect_mcp, key_of, other_workspace_key
from tests.mcp_client.conftest import McpTestServer
from tests.support.servers import Server, free_port

pytestmark = pytest.mark.timeout(420)  # the first test also starts the server
dg_server, dg_admin, mcp_server = datagen_support.dg_server, datagen_support.dg_admin, datagen_support.mcp_server

SCRIPT = '''
greeting = f"{salutation}, {who}!"
length = len(greeting)
'''

SCRIPT_V2 = '''
greeting = f"{salutation.upper()}, {who}!"
length = -1
'''

SLEEPS = '''
import time
time.sleep(seconds)
done = True
'''

FAILS = '''
raise RuntimeError(f"no {thing} today")
'''


@pytest.fixture
def dg(dg_server: Server) -> Iterator[DatagenClient]:
    client = DatagenClient(api_key=dg_server.admin_key, base_url=dg_server.base_url, timeout=60)
    yield client
    client.close()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_the_status_table_covers_every_runyard_status() -> None:
    assert set(STATUS_OF) == set(get_args(RunStatus))
    assert set(STATUS_OF.values()) == {"pending", "running", "completed", "failed"}
    assert datagen_status("queued") == "pending" and datagen_status("succeeded") == "completed"
    assert datagen_status("timed_out") == "failed" and datagen_status("cancelled") == "failed"
    assert datagen_status("a_newer_status") == "running"  # not ended: a waiter keeps waiting


def test_error_classes_are_the_references() -> None:
    for cls in (DatagenAuthError, DatagenToolError, DatagenHttpError, DatagenDeploymentError, DatagenSecretError):
        assert issubclass(cls, DatagenError)


def test_the_key_and_url_come_from_the_environment(dg_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAGEN_API_KEY", raising=False)
    monkeypatch.delenv("DATAGEN_BASE_URL", raising=False)
    with pytest.raises(DatagenAuthError, match="DATAGEN_API_KEY"):
        DatagenClient()
    monkeypatch.setenv("DATAGEN_API_KEY", dg_server.admin_key)
    monkeypatch.setenv("DATAGEN_BASE_URL", dg_server.base_url)
    client = DatagenClient()
    assert client.base_url == dg_server.base_url and client.timeout == 30 and client.retries == 0
    assert client.backoff_seconds == 0.5
    assert isinstance(client.list_custom_tools(limit=1), list)


def test_deploy_run_update_rename_get_and_list(dg: DatagenClient, dg_admin: httpx.Client) -> None:
    name = unique("greeter")
    made = dg.deploy_custom_tool(name, SCRIPT, description="says hello", output_vars=["greeting", "length"],
                                 default_input_vars={"salutation": "Hello"}, additional_imports=[])
    uuid_ = made["deployment_uuid"]
    assert uuid_.startswith("tool_") and made["name"] == name and made["deployment_type"] == "private"
    assert made["output_vars"] == ["greeting", "length"] and made["default_input_vars"] == {"salutation": "Hello"}
    assert made["mode"] == "script" and made["description"] == "says hello"

    done = dg.run_custom_tool(uuid_, {"who": "Ada"})
    assert done["status"] == "completed" and done["runyard_status"] == "succeeded", done
    assert done["output_vars"] == {"greeting": "Hello, Ada!", "length": 11}
    assert done["run_uuid"].startswith("run_") and done["deployment_uuid"] == uuid_
    assert done["input_vars"]["who"] == "Ada" and done["error"] is None

    with pytest.raises(DatagenDeploymentError, match="exists already") as taken:
        dg.deploy_custom_tool(name, SCRIPT)
    assert taken.value.code == "tool_exists" and taken.value.details["deployment_uuid"] == uuid_

    renamed = unique("greeter")
    changed = dg.update_custom_tool(uuid_, name=renamed, code=SCRIPT_V2, description="shouts")
    assert changed["deployment_uuid"] == uuid_ and changed["name"] == renamed and changed["version"] == 2
    with pytest.raises(DatagenHttpError, match="HTTP 404") as gone:
        dg.get_custom_tool(name)  # the old name is free, the id stays
    assert gone.value.status_code == 404 and gone.value.code == "tool_not_found"
    got = dg.get_custom_tool(uuid_)
    assert got["name"] == renamed and got["description"] == "shouts" and got["output_vars"] == ["greeting", "length"]
    assert dg.run_custom_tool(renamed, {"who": "Bo"})["output_vars"] == {"greeting": "HELLO, Bo!", "length": -1}

    more = [dg.deploy_custom_tool(unique("lister"), "x = 1", output_vars=["x"], deployment_type="public")
            for _ in range(3)]
    assert all(t["deployment_type"] == "public" for t in more)
    newest = dg.list_custom_tools(limit=3)
    assert [t["deployment_uuid"] for t in newest] == [t["deployment_uuid"] for t in reversed(more)]
    assert dg.list_custom_tools(skip=1, limit=2) == newest[1:3]
    oldest_first = dg.list_custom_tools(sort_by="created_at", order_by="asc", limit=1000)
    ids = [t["deployment_uuid"] for t in oldest_first]
    assert ids.index(uuid_) < ids.index(more[0]["deployment_uuid"]) < ids.index(more[2]["deployment_uuid"])
    by_name = [t["name"] for t in dg.list_custom_tools(sort_by="name", order_by="asc", limit=1000)]
    assert by_name == sorted(by_name)
    with pytest.raises(ValueError, match="sort_by"):
        dg.list_custom_tools(sort_by="size")
    with pytest.raises(ValueError, match="limit"):
        dg.list_custom_tools(limit=1001)


def test_async_runs_statuses_and_failures(dg: DatagenClient) -> None:
    sleeper = dg.deploy_custom_tool(unique("sleeper"), SLEEPS, output_vars=["done"])["deployment_uuid"]
    started = dg.run_custom_tool_async(sleeper, {"seconds": 1.5})
    # pending as a rule; a worker may have taken it already by the time the answer leaves
    assert started["status"] in ("pending", "running") and started["run_uuid"].startswith("run_"), started
    assert dg.check_run_status(started["run_uuid"])["status"] in ("pending", "running")
    finished = dg.wait_for_run(started["run_uuid"], timeout=60, poll_interval=0.2)
    assert finished["status"] == "completed" and finished["output_vars"] == {"done": True}
    assert dg.check_run_status(started["run_uuid"]) == {"run_uuid": started["run_uuid"], "status": "completed",
                                                        "runyard_status": "succeeded"}
    assert dg.get_run(started["run_uuid"])["input_vars"] == {"seconds": 1.5}

    slow = dg.run_custom_tool_async(sleeper, {"seconds": 30})
    with pytest.raises(DatagenDeploymentError, match="did not end within") as waited:
        dg.wait_for_run(slow["run_uuid"], timeout=1, poll_interval=0.2)
    assert waited.value.code == "wait_timeout" and waited.value.run is not None
    assert waited.value.run["status"] in ("pending", "running")
    dg.client.runs.cancel(slow["run_uuid"])  # not needed any longer

    with pytest.raises(DatagenDeploymentError, match="timed_out") as timed_out:
        dg.run_custom_tool(sleeper, {"seconds": 30}, execution_timeout=2)
    assert timed_out.value.run is not None and timed_out.value.run["status"] == "failed"
    assert timed_out.value.run["runyard_status"] == "timed_out" and timed_out.value.run["timeout_s"] == 2

    with pytest.raises(DatagenDeploymentError, match="timeout_too_large"):
        dg.run_custom_tool(sleeper, {"seconds": 1}, execution_timeout=3600)  # the tool's own limit is 600 s

    failing = dg.deploy_custom_tool(unique("failing"), FAILS, output_vars=[])["deployment_uuid"]
    with pytest.raises(DatagenDeploymentError, match="RuntimeError: no cake today") as failed:
        dg.run_custom_tool(failing, {"thing": "cake"})
    assert failed.value.run is not None and failed.value.run["status"] == "failed"

    missing_var = dg.deploy_custom_tool(unique("novar"), "y = 1", output_vars=["x"])["deployment_uuid"]
    with pytest.raises(DatagenDeploymentError, match="output_var_missing"):
        dg.run_custom_tool(missing_var)

    with pytest.raises(DatagenHttpError, match="HTTP 404"):
        dg.check_run_status("run_00000000000000000000000000")
    with pytest.raises(DatagenDeploymentError, match="HTTP 404"):
        dg.run_custom_tool_async("tool_does_not_exist")


def test_secrets(dg: DatagenClient) -> None:
    name = unique("API_TOKEN").upper()
    made = dg.set_secret(name, "s3cr3t-value-123", display_name="The token", description="for tests")
    assert made["name"] == name and made["category"] == "api_key" and "s3cr3t-value-123" not in str(made)
    listed = {s["name"]: s for s in dg.list_secrets()}
    assert listed[name]["display_name"] == "The token" and listed[name]["provider"] == "runyard"
    assert "s3cr3t-value-123" not in str(listed) and listed[name]["masked_value"]
    with pytest.raises(DatagenSecretError, match="secret_exists") as exists:
        dg.set_secret(name, "other")
    assert exists.value.status_code == 409
    assert dg.set_secret(name, "other-value", force=True)["name"] == name
    with pytest.raises(DatagenSecretError, match="HTTP 400"):
        dg.set_secret("bad name!", "v")


def test_a_script_reads_its_required_secret(dg: DatagenClient) -> None:
    secret = unique("TOKEN").upper()
    dg.set_secret(secret, "abc123")
    code = f"import os\nsize = len(os.environ[{secret!r}])\n"
    tool = dg.deploy_custom_tool(unique("secretive"), code, output_vars=["size"], required_secrets=[secret])
    assert tool["required_secrets"] == [secret]
    assert dg.run_custom_tool(tool["deployment_uuid"])["output_vars"] == {"size": 6}


def test_execute_tool_runs_mcp_aliases_and_tools(dg: DatagenClient, dg_admin: httpx.Client,
                                                 mcp_server: McpTestServer) -> None:
    server = connect_mcp(dg_admin, mcp_server)
    assert dg.execute_tool(f"mcp_{server}_add", {"a": 1, "b": 2}) == {"total": 3}
    with pytest.raises(DatagenToolError, match="boom went the tool") as failed:
        dg.execute_tool(f"mcp_{server}_boom")
    assert failed.value.run_id is not None and failed.value.run_id.startswith("run_")
    with pytest.raises(DatagenHttpError, match="mcp_tool_not_found"):
        dg.execute_tool(f"mcp_{server}_nope")
    with pytest.raises(ValueError):
        dg.execute_tool("")

    # a custom tool uses its declared server's tools through context.mcp
    code = f"from runyard import context\nanswer = context.mcp.call('mcp_{server}_add', {{'a': a, 'b': 40}})\n"
    tool = dg.deploy_custom_tool(unique("uses_mcp"), code, output_vars=["answer"], mcp_server_names=[server],
                                 expected_tools=[f"mcp_{server}_add"])
    assert tool["mcp_server_names"] == [server] and tool["expected_tools"] == [f"mcp_{server}_add"]
    assert dg.execute_tool(tool["name"], {"a": 2}) == {"answer": {"total": 42}}
    with pytest.raises(DatagenDeploymentError, match="mcp_tools_missing"):
        dg.deploy_custom_tool(unique("uses_mcp"), code, output_vars=["answer"], mcp_server_names=[server],
                              expected_tools=[f"mcp_{server}_nope"])


def test_keys_are_checked(dg_server: Server, dg_admin: httpx.Client) -> None:
    wrong = DatagenClient(api_key="ry_not_a_key", base_url=dg_server.base_url)
    with pytest.raises(DatagenAuthError, match="invalid_api_key") as refused:
        wrong.list_custom_tools()
    assert refused.value.status_code == 401
    with pytest.raises(DatagenAuthError):
        wrong.execute_tool("anything")

    viewer = DatagenClient(api_key=key_of(dg_admin, "viewer"), base_url=dg_server.base_url)
    with pytest.raises(DatagenAuthError, match="HTTP 403"):
        viewer.deploy_custom_tool(unique("viewer"), "x = 1", output_vars=["x"])
    with pytest.raises(DatagenAuthError, match="HTTP 403"):
        viewer.set_secret(unique("V").upper(), "v")

    with DatagenClient(api_key=dg_server.admin_key, base_url=dg_server.base_url) as admin:
        tool = admin.deploy_custom_tool(unique("mine"), "x = 1", output_vars=["x"], deployment_type="public")
        run = admin.run_custom_tool(tool["deployment_uuid"])
    other = DatagenClient(api_key=other_workspace_key(dg_server), base_url=dg_server.base_url)
    with pytest.raises(DatagenHttpError, match="HTTP 404"):
        other.get_custom_tool(tool["deployment_uuid"])
    with pytest.raises(DatagenHttpError, match="HTTP 404"):
        other.get_run(run["run_uuid"])
    with pytest.raises(DatagenDeploymentError, match="HTTP 404"):
        other.update_custom_tool(tool["deployment_uuid"], code="x = 2")
    assert tool["deployment_uuid"] not in {t["deployment_uuid"] for t in other.list_custom_tools(limit=1000)}
    with pytest.raises(DatagenHttpError, match="HTTP 404"):
        other.execute_tool(tool["name"])


def test_retries_are_spaced_by_backoff_seconds() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    client = DatagenClient(api_key="ry_any", base_url=closed, retries=2, backoff_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(DatagenHttpError) as failed:
        client.check_run_status("run_x")
    assert failed.value.code == "connection_error"
    assert time.monotonic() - started >= (0.2 + 0.4) * 0.75  # two retries, 0.2 then 0.4 s apart (± jitter)


def test_importable_with_the_light_client_install() -> None:
    """Nothing of the server's dependencies is imported (the base install has none of them)."""
    probe = ("import sys\n"
             "class Block:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('fastapi', 'sqlalchemy', 'starlette', 'uvicorn', 'duckdb', 'mcp'):\n"
             "            raise ImportError(f'{name} is not in the light install')\n"
             "sys.meta_path.insert(0, Block())\n"
             "from runyard.compat.datagen import DatagenClient\n"
             "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

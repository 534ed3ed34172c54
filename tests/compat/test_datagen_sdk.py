"""The published ``datagen-python-sdk`` (0.1.1, pinned in the test extra), unchanged, against
``/compat/datagen``: ``execute_tool`` runs an MCP tool by alias and a runyard tool by name;
a tool's failure is ``DatagenToolError``; an unknown alias or tool, a wrong key, another
workspace's key and a key that may not run tools are refused and start nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.compat import datagen_support
from tests.compat.datagen_support import connect_mcp, key_of, other_workspace_key
from tests.mcp_client.conftest import McpTestServer
from tests.support.servers import Server

datagen_sdk = pytest.importorskip("datagen_sdk", reason="datagen-python-sdk==0.1.1 (the test extra) is not installed")
DatagenClient = datagen_sdk.DatagenClient

pytestmark = pytest.mark.timeout(420)  # the first test also starts the server
dg_server, dg_admin, mcp_server = datagen_support.dg_server, datagen_support.dg_admin, datagen_support.mcp_server

MULTIPLY = '''
def main(a: int, b: int) -> dict:
    print("multiplying", flush=True)
    return {"product": a * b}
'''

FAILS = '''
def main(reason: str = "no") -> int:
    raise RuntimeError(f"refused: {reason}")
'''


def client(server: Server, key: str, **options: object) -> DatagenClient:
    return DatagenClient(api_key=key, base_url=f"{server.base_url}/compat/datagen", timeout=60, **options)


def deploy(admin: httpx.Client, code: str) -> str:
    name = f"dg-{uuid.uuid4().hex[:8]}"
    made = admin.post("/tools", json={"name": name, "code": code})
    assert made.status_code in (200, 201), made.text
    return name


def run_count(admin: httpx.Client) -> int:
    return int(admin.get("/runs", params={"limit": 1, "include_total": True}).json()["total"])


def test_an_mcp_tool_runs_by_alias(dg_server: Server, dg_admin: httpx.Client, mcp_server: McpTestServer) -> None:
    name = connect_mcp(dg_admin, mcp_server)
    dg = client(dg_server, dg_server.admin_key)
    assert dg.execute_tool(f"mcp_{name}_add", {"a": 2, "b": 40}) == {"total": 42}
    # the call is a run of the MCP tool, as through /api/v1/mcp-tools
    runs = dg_admin.get("/runs", params={"type": "mcp_tool", "limit": 5}).json()["items"]
    assert runs[0]["tool_name"] == f"mcp_{name}_add" and runs[0]["status"] == "succeeded", runs[0]
    assert runs[0]["trigger"] == "mcp"

    with pytest.raises(datagen_sdk.DatagenToolError, match="mcp_tool_error: .*boom went the tool"):
        dg.execute_tool(f"mcp_{name}_boom")


def test_a_runyard_tool_runs_by_name(dg_server: Server, dg_admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = deploy(dg_admin, MULTIPLY)
    monkeypatch.setenv("DATAGEN_API_KEY", key_of(dg_admin, "member"))  # the client's own env var
    dg = DatagenClient(base_url=f"{dg_server.base_url}/compat/datagen", timeout=60)
    assert dg.execute_tool(tool, {"a": 6, "b": 7}) == {"product": 42}
    latest = dg_admin.get("/runs", params={"tool": tool}).json()["items"][0]
    assert latest["status"] == "succeeded" and latest["trigger"] == "api" and latest["output"] == {"product": 42}

    failing = deploy(dg_admin, FAILS)
    with pytest.raises(datagen_sdk.DatagenToolError, match="RuntimeError: refused: because"):
        dg.execute_tool(failing, {"reason": "because"})

    before = run_count(dg_admin)
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 400: .*invalid_inputs"):
        dg.execute_tool(tool, {"a": "six"})
    assert run_count(dg_admin) == before


def test_unknown_aliases_and_tools_are_404_and_start_nothing(dg_server: Server, dg_admin: httpx.Client,
                                                             mcp_server: McpTestServer) -> None:
    name = connect_mcp(dg_admin, mcp_server)
    dg = client(dg_server, dg_server.admin_key, retries=1, backoff_seconds=0.01)
    before = run_count(dg_admin)
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404: .*mcp_tool_not_found"):
        dg.execute_tool(f"mcp_{name}_nope", {})
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404: .*mcp_tool_not_found"):
        dg.execute_tool("mcp_Linear_list_projects", {"limit": 20})
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404: .*tool_not_found"):
        dg.execute_tool(f"no-such-tool-{uuid.uuid4().hex[:6]}")
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404"):
        dg.execute_tool("../../api/v1/tokens")
    assert run_count(dg_admin) == before


def test_keys_wrong_other_workspace_and_viewer_are_refused(dg_server: Server, dg_admin: httpx.Client,
                                                           mcp_server: McpTestServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    name = connect_mcp(dg_admin, mcp_server)
    tool = deploy(dg_admin, MULTIPLY)
    before = run_count(dg_admin)

    monkeypatch.delenv("DATAGEN_API_KEY", raising=False)
    with pytest.raises(datagen_sdk.DatagenAuthError, match="API key missing"):
        DatagenClient(base_url=f"{dg_server.base_url}/compat/datagen")
    with pytest.raises(datagen_sdk.DatagenAuthError, match="Auth failed: .*invalid_api_key"):
        client(dg_server, "ry_not_a_key").execute_tool(f"mcp_{name}_add", {"a": 1, "b": 2})

    # A valid key of another workspace sees none of this one's servers or tools.
    other = client(dg_server, other_workspace_key(dg_server))
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404: .*mcp_tool_not_found"):
        other.execute_tool(f"mcp_{name}_add", {"a": 1, "b": 2})
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404: .*tool_not_found"):
        other.execute_tool(tool, {"a": 1, "b": 2})

    viewer = client(dg_server, key_of(dg_admin, "viewer"))
    with pytest.raises(datagen_sdk.DatagenAuthError, match="Auth failed: .*insufficient_role"):
        viewer.execute_tool(f"mcp_{name}_add", {"a": 1, "b": 2})
    with pytest.raises(datagen_sdk.DatagenAuthError, match="Auth failed: .*insufficient_role"):
        viewer.execute_tool(tool, {"a": 1, "b": 2})
    assert run_count(dg_admin) == before


def test_a_restricted_key_runs_its_tools_only(dg_server: Server, dg_admin: httpx.Client,
                                              mcp_server: McpTestServer) -> None:
    name = connect_mcp(dg_admin, mcp_server)
    allowed, hidden = deploy(dg_admin, MULTIPLY), deploy(dg_admin, MULTIPLY)
    made = dg_admin.post("/tokens", json={"name": f"restricted-{allowed}", "role": "member",
                                          "restrictions": {"tools": [allowed]}})
    assert made.status_code == 201, made.text
    dg = client(dg_server, made.json()["key"])
    assert dg.execute_tool(allowed, {"a": 2, "b": 3}) == {"product": 6}
    before = run_count(dg_admin)
    with pytest.raises(datagen_sdk.DatagenHttpError, match="HTTP 404: .*tool_not_found"):
        dg.execute_tool(hidden, {"a": 2, "b": 3})
    with pytest.raises(datagen_sdk.DatagenAuthError, match="Auth failed: .*restricted"):
        dg.execute_tool(f"mcp_{name}_add", {"a": 1, "b": 2})  # an MCP tool is none of its tools
    assert run_count(dg_admin) == before


def test_the_key_header_counts_only_under_the_datagen_prefix(dg_server: Server) -> None:
    with httpx.Client(base_url=dg_server.base_url, timeout=30) as http:
        key = {"X-API-Key": dg_server.admin_key}
        assert http.get("/api/v1/tools", headers=key).status_code == 401
        assert http.post("/compat/datalinks/query", headers=key, json={"query": "*"}).status_code == 401
        missing = http.post("/compat/datagen/api/tools/execute", json={"tool_alias_name": "x"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
        # a Bearer key (curl's way) works as well
        bearer = http.post("/compat/datagen/api/tools/execute", json={"tool_alias_name": "no-such-tool"},
                           headers={"Authorization": f"Bearer {dg_server.admin_key}"})
        assert bearer.status_code == 404 and bearer.json()["success"] is False, bearer.text
        assert bearer.json()["error"]["code"] == "tool_not_found"
        bad = http.post("/compat/datagen/api/tools/execute", json={"parameters": []}, headers=key)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error", bad.text

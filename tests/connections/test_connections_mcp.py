"""An ``mcp`` connection checked with the official MCP SDK's client (``initialize`` and
``tools/list`` over streamable HTTP): against a real MCP server on loopback — runyard's own
``/mcp`` endpoint, whose tools are the server's tools — with the key as a header secret."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.api import deploy
from tests.support.servers import Server

pytest.importorskip("mcp", reason="the MCP SDK (mcp, a server dependency the set-up installs) is not installed")


def test_mcp_verify_lists_tools_and_tells_auth_from_unreachable(conn_server: Server, admin: httpx.Client,
                                                                closed_port: int):
    u = uuid.uuid4().hex[:6]
    deploy(admin, f"mcp-echo-{u}", 'def main(text: str) -> str:\n    """Echo the text."""\n    return text\n')
    made = admin.post("/connections", json={"name": f"mcp-{u}", "type": "mcp", "config": {
        "url": f"{conn_server.base_url}/mcp", "headers": {"Authorization": f"Bearer {conn_server.admin_key}"}}})
    assert made.status_code == 201, made.text
    header = made.json()["config"]["headers"]["Authorization"]
    assert header["set"] is True and conn_server.admin_key not in made.text
    status = admin.post(f"/connections/mcp-{u}/verify").json()["status"]
    assert status["state"] == "ok" and status["latency_ms"] > 0, status
    tools = admin.get(f"/connections/mcp-{u}/metadata").json()["metadata"]["tools"]
    echo = next(t for t in tools if t["name"] == f"mcp-echo-{u}")
    assert echo["input_schema"]["properties"]["text"]["type"] == "string"

    wrong = admin.post("/connections", json={"name": f"mcp-wrong-{u}", "type": "mcp", "config": {
        "url": f"{conn_server.base_url}/mcp", "headers": {"Authorization": "Bearer ry_not_a_real_key"}}})
    status = admin.post(f"/connections/{wrong.json()['id']}/verify").json()["status"]
    assert status["state"] == "failed" and status["error"].startswith("authentication failed"), status

    down = admin.post("/connections", json={"name": f"mcp-down-{u}", "type": "mcp", "config": {
        "url": f"http://127.0.0.1:{closed_port}/mcp", "timeout_s": 2}})
    status = admin.post(f"/connections/{down.json()['id']}/verify").json()["status"]
    assert status == {**status, "state": "failed", "latency_ms": None,
                      "error": "unreachable: no connection could be made to the host"}
    stdio = admin.post("/connections", json={"name": f"mcp-stdio-{u}", "type": "mcp", "config": {
        "command": ["python", "-m", "some_server"]}})
    assert stdio.status_code == 201 and stdio.json()["config"]["command"] == ["python", "-m", "some_server"]

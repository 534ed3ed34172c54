"""``context.mcp.call(alias, params)`` inside a tool's run: answered by the worker (the
connection's credentials never enter the run's process), only for the servers the tool
declares (``mcp_server_names``), each call a step of the run's trace."""

from __future__ import annotations

import uuid

import httpx

from tests.mcp_client.conftest import McpTestServer
from tests.mcp_client.test_mcp_tools import TOKEN, connect
from tests.support.api import deploy, run

CALLER = '''
import json, os
from runyard import context

def main(alias: str, params: dict) -> dict:
    try:
        result = context.mcp.call(alias, params)
    except context.McpToolNotDeclared as exc:
        return {"refused": str(exc)}
    except context.McpCallFailed as exc:
        return {"failed": exc.code, "message": exc.message}
    # What the run's process could see of the connection: nothing.
    seen = json.dumps(dict(os.environ))
    print("environment", seen)
    return {"result": result, "env": seen}
'''


def test_a_tool_calls_a_declared_servers_tool_through_the_worker(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    other = connect(admin, mcp_server)
    tool = f"calls-mcp-{uuid.uuid4().hex[:6]}"
    deploy(admin, tool, CALLER, mcp_server_names=[name])

    done = run(admin, tool, {"alias": f"mcp_{name}_add", "params": {"a": 2, "b": 40}}, wait=60)
    assert done["status"] == "succeeded", done
    assert done["output"]["result"] == {"total": 42}
    trace = admin.get(f"/runs/{done['id']}/trace")
    assert trace.status_code == 200, trace.text
    steps = [e for e in trace.json()["items"] if e["name"] == "mcp.call"]
    assert len(steps) == 1 and steps[0]["attrs"]["alias"] == f"mcp_{name}_add", steps
    assert steps[0]["attrs"]["ok"] is True and steps[0]["attrs"]["duration_ms"] >= 0

    # The server was sent the header; the run sees it only as *** (in what it is answered),
    # and neither its environment, log nor output holds it.
    who = run(admin, tool, {"alias": f"mcp_{name}_whoami", "params": {}}, wait=60)
    assert who["status"] == "succeeded", who
    assert who["output"]["result"] == {"result": "***"}, who
    secret = TOKEN.split()[1]
    assert secret not in who["output"]["env"] and "RUNYARD_MCP_DIR" in who["output"]["env"]
    assert secret not in admin.get(f"/runs/{who['id']}/logs").text
    assert secret not in admin.get(f"/runs/{who['id']}", params={"expand": "inputs"}).text

    # A tool of a server the tool does not declare is refused (and traced as such).
    refused = run(admin, tool, {"alias": f"mcp_{other}_add", "params": {"a": 1, "b": 1}}, wait=60)
    assert refused["status"] == "succeeded", refused
    assert "not a tool of the MCP servers this tool declares" in refused["output"]["refused"], refused
    steps = [e for e in admin.get(f"/runs/{refused['id']}/trace").json()["items"] if e["name"] == "mcp.call"]
    assert steps[0]["attrs"]["ok"] is False and steps[0]["attrs"]["error"] == "mcp_tool_not_declared"

    # A tool's own error comes back as McpCallFailed with its code.
    boom = run(admin, tool, {"alias": f"mcp_{name}_boom", "params": {}}, wait=60)
    assert boom["output"]["failed"] == "mcp_tool_error" and "boom went the tool" in boom["output"]["message"]


def test_a_tool_declaring_no_server_reaches_none(admin: httpx.Client, mcp_server: McpTestServer):
    name = connect(admin, mcp_server)
    tool = f"no-mcp-{uuid.uuid4().hex[:6]}"
    deploy(admin, tool, CALLER)
    done = run(admin, tool, {"alias": f"mcp_{name}_add", "params": {"a": 1, "b": 2}}, wait=60)
    assert done["status"] == "succeeded", done
    assert "declares no MCP servers" in done["output"]["refused"], done

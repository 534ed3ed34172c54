"""runyard as an MCP server (issue 18), driven by the official MCP SDK's client against the
real test server: over streamable HTTP (``/mcp``) and over stdio (``runyard mcp`` launched
as a child process, reaching the server through the SDK). The same scenarios run on both."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError

from runyard.api.mcp import MAX_SESSIONS_PER_KEY
from tests.mcp_server.conftest import World, http_session, runyard_command, stdio_session
from tests.support.api import deploy, wait_status
from tests.support.cli import run_blocked
from tests.support.servers import Server, free_port

RUN_ID = "runyard/run_id"
Opener = Callable[[str], AbstractAsyncContextManager[ClientSession]]


@pytest.fixture(params=["http", "stdio"])
def connect(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> Opener:
    """Opens an MCP session for a key over the transport under test."""
    if request.param == "http":
        return lambda key: http_session(world.server, key)
    return lambda key: stdio_session(world.server, key, tmp_path)


def _names(tools: list[types.Tool]) -> set[str]:
    return {tool.name for tool in tools}


async def _all_tools(session: ClientSession) -> list[types.Tool]:
    """Every page of tools/list (the shared server holds other tests' tools too)."""
    tools, cursor = [], None
    while True:
        page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools += page.tools
        if not page.next_cursor:
            return tools
        cursor = page.next_cursor


def test_tools_list_gives_each_tool_its_stored_input_schema(world: World, connect: Opener) -> None:
    async def scenario() -> list[types.Tool]:
        async with connect(world.server.admin_key) as session:
            return await _all_tools(session)

    tools = {tool.name: tool for tool in anyio.run(scenario)}
    assert {world.echo, world.fail, world.slow} <= set(tools)
    with world.api() as api:
        stored = api.get(f"/tools/{world.echo}").json()
    assert tools[world.echo].input_schema == stored["input_schema"]  # unchanged
    assert tools[world.echo].description == stored["description"] == "Echo x back."


def test_a_call_is_a_run_whose_output_comes_back_structured(world: World, connect: Opener) -> None:
    async def scenario() -> tuple[types.CallToolResult, types.ReadResourceResult]:
        async with connect(world.server.admin_key) as session:
            result = await session.call_tool(world.echo, {"x": 5, "label": "answer"})
            logs = await session.read_resource(f"runyard://runs/{result.meta[RUN_ID]}/logs")
            return result, logs

    result, logs = anyio.run(scenario)
    assert not result.is_error
    assert result.structured_content == {"x": 5, "label": "answer"}
    assert json.loads(result.content[0].text) == {"x": 5, "label": "answer"}
    with world.api() as api:
        run = api.get(f"/runs/{result.meta[RUN_ID]}").json()
    assert run["trigger"] == "mcp" and run["status"] == "succeeded" and run["output"] == result.structured_content
    assert logs.contents[0].text == "answer 5\n" and logs.contents[0].mime_type == "text/plain"


def test_invalid_arguments_and_unknown_tools_are_error_results(world: World, connect: Opener) -> None:
    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with connect(world.server.admin_key) as session:
            return (await session.call_tool(world.echo, {"x": "not a number"}),
                    await session.call_tool(f"{world.echo}-missing", {}))

    invalid, missing = anyio.run(scenario)
    assert invalid.is_error and invalid.structured_content["error"]["code"] == "invalid_inputs"
    assert missing.is_error and missing.structured_content["error"]["code"] == "tool_not_found"


def test_a_failing_tool_gives_an_error_result_with_the_runs_error(world: World, connect: Opener) -> None:
    async def scenario() -> types.CallToolResult:
        async with connect(world.server.admin_key) as session:
            return await session.call_tool(world.fail, {})

    result = anyio.run(scenario)
    assert result.is_error
    body = result.structured_content
    assert body["status"] == "failed" and body["run_id"] == result.meta[RUN_ID]
    assert "boom: the input was wrong" in body["error"]["message"] and body["error"]["code"] == "ValueError"
    assert json.loads(result.content[0].text) == body
    with world.api() as api:
        run = api.get(f"/runs/{body['run_id']}").json()
    assert run["error"]["type"] == body["error"]["code"] and run["trigger"] == "mcp"


def _mcp_runs(world: World, tool: str) -> int:
    with world.api() as api:
        return sum(r["trigger"] == "mcp" for r in api.get("/runs", params={"tool": tool, "limit": 200}).json()["items"])


def test_a_restricted_key_sees_and_calls_only_its_tools(world: World, connect: Opener) -> None:
    with world.api() as api:  # a run the restricted key may not read
        hidden = api.post("/runs", params={"wait": 30}, json={"tool": world.fail}).json()
    before = _mcp_runs(world, world.fail)

    async def scenario() -> tuple[list[types.Tool], types.CallToolResult, types.CallToolResult, MCPError]:
        async with connect(world.restricted_key) as session:
            tools = await _all_tools(session)
            allowed = await session.call_tool(world.echo, {"x": 2})
            refused = await session.call_tool(world.fail, {})
            with pytest.raises(MCPError) as caught:
                await session.read_resource(f"runyard://runs/{hidden['id']}/logs")
            return tools, allowed, refused, caught.value

    tools, allowed, refused, unreadable = anyio.run(scenario)
    assert _names(tools) == {world.echo}
    assert not allowed.is_error and allowed.structured_content["x"] == 2
    # The hidden tool answers exactly as a tool that does not exist.
    assert refused.is_error and refused.structured_content["error"]["code"] == "tool_not_found"
    assert unreadable.error.data["code"] == "run_not_found"
    assert _mcp_runs(world, world.fail) == before  # no run was started


def test_a_viewer_key_is_offered_no_tools(world: World, connect: Opener) -> None:
    async def scenario() -> tuple[list[types.Tool], types.CallToolResult]:
        async with connect(world.viewer_key) as session:
            return await _all_tools(session), await session.call_tool(world.echo, {})

    tools, call = anyio.run(scenario)
    assert tools == []  # it may not start runs: there is nothing it could call
    assert call.is_error and call.structured_content["error"]["code"] == "insufficient_role"


def test_a_long_run_sends_progress_and_its_artifact_is_a_resource(world: World, connect: Opener) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def scenario() -> tuple[types.CallToolResult, types.ReadResourceResult]:
        async with connect(world.server.admin_key) as session:
            result = await session.call_tool(world.slow, {"steps": 3, "pause": 0.6}, progress_callback=on_progress)
            artifact = await session.read_resource(f"runyard://runs/{result.meta[RUN_ID]}/artifacts/report.txt")
            return result, artifact

    result, artifact = anyio.run(scenario)
    assert result.structured_content == {"steps": 3}
    assert len(seen) >= 3, seen
    values = [p for p, _, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing
    messages = " | ".join(m or "" for _, _, m in seen)
    assert "running" in messages and "step 2 of 3" in messages and "67%" in messages, messages
    assert seen[-1][2].startswith("succeeded")
    assert artifact.contents[0].text == "all steps done"


def test_cancelling_the_call_cancels_the_run(world: World, connect: Opener) -> None:
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message.startswith("running"):
            started.set()

    async def scenario() -> None:
        async with connect(world.server.admin_key) as session:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    async def call() -> None:
                        await session.call_tool(world.slow, {"steps": 100, "pause": 0.5}, progress_callback=on_progress)

                    tg.start_soon(call)
                    await started.wait()
                    tg.cancel_scope.cancel()  # the client sends notifications/cancelled
            await anyio.sleep(0.5)  # the session stays open while the server handles it

    anyio.run(scenario)
    with world.api() as api:
        runs = api.get("/runs", params={"tool": world.slow, "limit": 20}).json()["items"]
        mine = next(r for r in runs if r["trigger"] == "mcp" and r["status"] in ("running", "cancelled", "queued"))
        assert wait_status(api, mine["id"], {"cancelled", "failed", "succeeded"}, timeout=30)["status"] == "cancelled"


def test_unknown_resources_are_not_found(world: World, connect: Opener) -> None:
    async def scenario() -> tuple[MCPError, MCPError, types.ListResourceTemplatesResult]:
        async with connect(world.server.admin_key) as session:
            templates = await session.list_resource_templates()
            with pytest.raises(MCPError) as bad_uri:
                await session.read_resource("runyard://datasets/x")
            with pytest.raises(MCPError) as no_run:
                await session.read_resource("runyard://runs/run_00000000000000000000000000/logs")
            return bad_uri.value, no_run.value, templates

    bad_uri, no_run, templates = anyio.run(scenario)
    assert bad_uri.error.data["code"] == "resource_not_found"
    assert no_run.error.data["code"] == "run_not_found"
    assert {t.uri_template for t in templates.resource_templates} == {
        "runyard://runs/{run_id}/logs", "runyard://runs/{run_id}/artifacts/{path}"}


# -- the HTTP endpoint's own checks -----------------------------------------------------------
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _post(world: World, body: dict[str, Any], key: str | None, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{world.server.base_url}/mcp", json=body, headers={**MCP_HEADERS, **auth, **headers},
                      timeout=30)


def test_no_key_or_a_bad_key_is_401(world: World) -> None:
    for key in (None, "ry_not_a_real_key"):
        response = _post(world, INITIALIZE, key)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == ("missing_api_key" if key is None else "invalid_api_key")
        assert "mcp-session-id" not in response.headers


def test_a_foreign_origin_is_refused(world: World) -> None:
    port = world.server.port
    for origin in ("http://evil.example", "http://localhost:1", "null", f"http://evil.example:{port}"):
        response = _post(world, INITIALIZE, world.server.admin_key, Origin=origin)
        assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed", origin
        assert "mcp-session-id" not in response.headers
    # DNS rebinding: a page whose name now resolves to the server sends its own name as
    # both Origin and Host; that is not the server's origin.
    rebound = _post(world, INITIALIZE, world.server.admin_key, Origin=f"http://evil.example:{port}",
                    Host=f"evil.example:{port}")
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "origin_not_allowed"
    # The server's own origins and no Origin at all (not a browser) are fine.
    for origin in (world.server.base_url, f"http://localhost:{port}"):
        same = _post(world, INITIALIZE, world.server.admin_key, Origin=origin)
        assert same.status_code == 200 and same.headers["mcp-session-id"], origin
    assert _post(world, INITIALIZE, world.server.admin_key).status_code == 200


def test_a_session_belongs_to_the_key_that_opened_it(world: World) -> None:
    opened = _post(world, INITIALIZE, world.server.admin_key)
    session = opened.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    _post(world, {"jsonrpc": "2.0", "method": "notifications/initialized"}, world.server.admin_key, **headers)
    for other in (world.other_member_key, world.restricted_key):
        stolen = _post(world, listing, other, **headers)
        assert stolen.status_code == 404, stolen.text
        assert world.echo not in stolen.text
    own = _post(world, listing, world.server.admin_key, **headers)
    assert own.status_code == 200
    names = _listed_tool_names(world, own, headers)
    assert world.echo in names


def _listed_tool_names(world: World, first: httpx.Response, headers: dict[str, str]) -> list[str]:
    """Every tool name of a tools/list answer (an SSE event), following nextCursor."""
    names: list[str] = []
    response = first
    while True:
        data = next(line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: "))
        result = json.loads(data)["result"]
        names += [tool["name"] for tool in result["tools"]]
        if not result.get("nextCursor"):
            return names
        listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": result["nextCursor"]}}
        response = _post(world, listing, world.server.admin_key, **headers)
        assert response.status_code == 200, response.text


def test_a_session_cannot_be_ended_or_followed_with_another_key(world: World) -> None:
    session = _post(world, INITIALIZE, world.server.admin_key).headers["mcp-session-id"]
    headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    other = {"Authorization": f"Bearer {world.other_member_key}"}
    ended = httpx.delete(f"{world.server.base_url}/mcp", headers={**headers, **other}, timeout=30)
    assert ended.status_code == 404
    # Still the owner's: its DELETE works (and the session is gone after it).
    own = {"Authorization": f"Bearer {world.server.admin_key}"}
    assert httpx.delete(f"{world.server.base_url}/mcp", headers={**headers, **own}, timeout=30).status_code == 200
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    assert _post(world, listing, world.server.admin_key, **{"mcp-session-id": session}).status_code == 404


def test_a_key_deleted_mid_session_stops_working(world: World) -> None:
    with world.api() as api:
        token = api.post("/tokens", json={"name": "mcp-short-lived", "role": "member"}).json()
    session = _post(world, INITIALIZE, token["key"]).headers["mcp-session-id"]
    headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    _post(world, {"jsonrpc": "2.0", "method": "notifications/initialized"}, token["key"], **headers)
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    assert _post(world, listing, token["key"], **headers).status_code == 200
    with world.api() as api:
        assert api.delete(f"/tokens/{token['id']}").status_code == 204
    deadline = time.monotonic() + 15  # a key's authentication is cached for a few seconds at most
    while (refused := _post(world, listing, token["key"], **headers)).status_code != 401:
        assert time.monotonic() < deadline, refused.text
        time.sleep(0.5)
    assert refused.json()["error"]["code"] == "invalid_api_key"


BLOBS = '''
from runyard import context

def main(big_mb: int = 0) -> dict:
    """Leaves a binary artifact, and a big one when asked."""
    context.artifact("bytes.bin", bytes(range(256)))
    if big_mb:
        context.artifact("big.txt", "x" * (big_mb * 1024 * 1024))
    return {"ok": True}
'''


def test_binary_and_oversized_artifacts(world: World) -> None:
    with world.api() as api:
        deploy(api, f"{world.echo}-blobs", textwrap.dedent(BLOBS))

    async def scenario() -> tuple[types.ReadResourceResult, MCPError]:
        async with http_session(world.server, world.server.admin_key) as session:
            result = await session.call_tool(f"{world.echo}-blobs", {"big_mb": 9})
            uri = f"runyard://runs/{result.meta[RUN_ID]}/artifacts"
            small = await session.read_resource(f"{uri}/bytes.bin")
            with pytest.raises(MCPError) as too_big:
                await session.read_resource(f"{uri}/big.txt")
            return small, too_big.value

    small, too_big = anyio.run(scenario)
    assert base64.b64decode(small.contents[0].blob) == bytes(range(256))
    assert too_big.error.data["code"] == "resource_too_large"


def test_runyard_mcp_without_a_key_says_how_to_configure_one(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "RUNYARD_CONFIG": str(tmp_path / "none.json"),
           "HOME": str(tmp_path)}
    done = subprocess.run([runyard_command(), "mcp"], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "no API key" in done.stderr and not done.stdout


def test_runyard_mcp_with_the_server_out_of_reach_answers_errors(tmp_path: Path) -> None:
    gone = Server(data_dir=tmp_path / "unused", port=free_port())  # never started: nothing listens

    async def scenario() -> tuple[MCPError, types.CallToolResult]:
        async with stdio_session(gone, "ry_some_key", tmp_path) as session:
            with pytest.raises(MCPError) as listing:
                await session.list_tools()
            return listing.value, await session.call_tool("anything", {})

    listing, call = anyio.run(scenario)
    assert listing.error.data["code"] == "server_unreachable"
    assert call.is_error and call.structured_content["error"]["code"] == "server_unreachable"


def test_runyard_mcp_without_the_mcp_sdk_says_what_to_install() -> None:
    # The server packages (starlette among them, which the MCP SDK needs) cannot be imported.
    code = "from runyard.cli.main import app\nsys.argv = ['runyard', *sys.argv[1:]]\napp()\n"
    done = run_blocked(code, "--api-key", "ry_some_key", "--base-url", "http://127.0.0.1:9", "mcp")
    assert done.returncode == 1 and "runyard[mcp]" in done.stderr and "Traceback" not in done.stderr


def test_one_key_cannot_take_every_session(world: World) -> None:
    with world.api() as api:
        key = api.post("/tokens", json={"name": "mcp-greedy", "role": "member"}).json()["key"]
    sessions = [_post(world, INITIALIZE, key).headers["mcp-session-id"] for _ in range(MAX_SESSIONS_PER_KEY)]
    refused = _post(world, INITIALIZE, key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_sessions"
    assert _post(world, INITIALIZE, world.other_member_key).status_code == 200  # other keys are not held up
    ended = httpx.delete(f"{world.server.base_url}/mcp", timeout=30, headers={
        **MCP_HEADERS, "Authorization": f"Bearer {key}", "mcp-session-id": sessions[0],
        "mcp-protocol-version": "2025-06-18"})
    assert ended.status_code == 200
    assert _post(world, INITIALIZE, key).status_code == 200  # room again


def test_mcp_requests_count_against_the_workspace_rate(tmp_path: Path) -> None:
    limited = Server(data_dir=tmp_path / "data", slots=1, extra_env={"RUNYARD_REQUESTS_PER_MINUTE": "3"})
    limited.start()
    try:
        with limited.client() as operator:  # the operator (and keys it makes for itself) is never limited
            assert operator.post("/users", json={"username": "counted", "role": "member"}).status_code == 201
            key = operator.post("/tokens", json={"name": "counted", "role": "member", "user": "counted"}).json()["key"]
        answers = [httpx.post(f"{limited.base_url}/mcp", json=INITIALIZE, timeout=30,
                              headers={**MCP_HEADERS, "Authorization": f"Bearer {key}"}) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers["x-ratelimit-limit"] == "3"
        assert answers[3].json()["error"]["code"] == "rate_limited" and int(answers[3].headers["retry-after"]) >= 1
    finally:
        limited.stop()

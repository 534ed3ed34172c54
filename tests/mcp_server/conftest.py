"""MCP tests' helpers: the official SDK's client connected to the shared test server over
streamable HTTP (``/mcp``) or over stdio (``runyard mcp`` as a child process), and the
tools and keys they use."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.support.api import deploy
from tests.support.servers import Server

ECHO = '''
def main(x: int = 1, label: str = "hi") -> dict:
    """Echo x back."""
    print(label, x)
    return {"x": x, "label": label}
'''

FAIL = '''
def main() -> None:
    """Always fails."""
    print("about to fail")
    raise ValueError("boom: the input was wrong")
'''

# Reports progress and writes a log line per step, then leaves an artifact.
SLOW = '''
import time
from runyard import context

def main(steps: int = 3, pause: float = 0.6) -> dict:
    """Works in steps."""
    for i in range(steps):
        print(f"step {i + 1} of {steps}", flush=True)
        context.progress((i + 1) / steps, f"step {i + 1}")
        time.sleep(pause)
    context.artifact("report.txt", "all steps done")
    return {"steps": steps}
'''


@dataclass
class World:
    server: Server
    echo: str
    fail: str
    slow: str
    restricted_key: str  # a member key restricted to the echo tool
    viewer_key: str
    other_member_key: str

    def api(self, key: str | None = None) -> httpx.Client:
        return self.server.client(key)


def _key(api: httpx.Client, name: str, role: str, tools: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": name, "role": role}
    if tools is not None:
        body["restrictions"] = {"tools": tools}
    response = api.post("/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    tag = uuid.uuid4().hex[:8]
    names = {"echo": f"mcp-echo-{tag}", "fail": f"mcp-fail-{tag}", "slow": f"mcp-slow-{tag}"}
    with server.client() as api:
        for kind, code in (("echo", ECHO), ("fail", FAIL), ("slow", SLOW)):
            deploy(api, names[kind], textwrap.dedent(code))
        return World(server=server, **names,
                     restricted_key=_key(api, f"mcp-restricted-{tag}", "member", [names["echo"]]),
                     viewer_key=_key(api, f"mcp-viewer-{tag}", "viewer"),
                     other_member_key=_key(api, f"mcp-other-{tag}", "member"))


@asynccontextmanager
async def http_session(server: Server, key: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http, \
            streamable_http_client(f"{server.base_url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def runyard_command() -> str:
    return str(Path(sys.executable).with_name("runyard"))


@asynccontextmanager
async def stdio_session(server: Server, key: str, tmp_path: Path) -> AsyncIterator[ClientSession]:
    env = {"RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": key,
           "RUNYARD_CONFIG": str(tmp_path / "no-config.json"), "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=runyard_command(), args=["mcp"], env=env)
    with (tmp_path / "mcp-stderr.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session

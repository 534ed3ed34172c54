"""runyard as an MCP client: one runyard server (per backend) allowed to reach loopback, and a
real MCP server (tests/mcp_client/mcp_test_server.py, the official SDK) started on a loopback
port by the test in a subprocess — so a test can kill it mid-call."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import PgDatabase, Server, free_port

pytest.importorskip("mcp", reason="the MCP SDK (mcp, a server dependency the set-up installs) is not installed")

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")


class McpTestServer:
    def __init__(self, transport: str = "streamable-http") -> None:
        self.port = free_port()
        self.transport = transport
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.transport == 'sse' else 'mcp'}"

    def start(self) -> McpTestServer:
        self.process = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), str(self.port), self.transport],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the MCP test server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:  # uvicorn waits for a hanging call to end
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="package")
def client_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"mcp-client-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_ALLOWED_HOSTS": "127.0.0.1"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture(scope="package")
def admin(client_server: Server) -> Iterator[httpx.Client]:
    with client_server.client(timeout=60) as client:
        yield client


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer().start()
    try:
        yield server
    finally:
        server.stop()

"""What the DataGen compat tests share: a server allowed to reach loopback (the MCP test
server runs there), an MCP connection to that server, and a valid key of a second workspace
in the same database (runyard serves one workspace per deployment, so the test writes it
straight into the store, as an operator's tooling would)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from runyard.ids import new_id
from runyard.services.tokens import generate_key, hash_key
from runyard.store.db import Database
from runyard.store.tables import tokens, workspaces
from runyard.store.tables_data import users
from runyard.timeutil import utcnow
from tests.mcp_client.conftest import McpTestServer
from tests.support.servers import PgDatabase, Server

STARTUP_S = 180  # a server of the module's own migrates a fresh database: slow on a busy host


@pytest.fixture(scope="module")
def dg_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"datagen-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_ALLOWED_HOSTS": "127.0.0.1"})
    srv.start(wait_ready=False)
    try:
        srv.wait_ready(timeout=STARTUP_S)
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture(scope="module")
def dg_admin(dg_server: Server) -> Iterator[httpx.Client]:
    with dg_server.client(timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpTestServer]:
    server = McpTestServer().start()
    try:
        yield server
    finally:
        server.stop()


def connect_mcp(admin: httpx.Client, server: McpTestServer) -> str:
    """A verified ``mcp`` connection to ``server``; its name."""
    name = f"srv{uuid.uuid4().hex[:6]}"
    made = admin.post("/connections", json={"name": name, "type": "mcp", "config": {"url": server.url}})
    assert made.status_code == 201, made.text
    status = admin.post(f"/connections/{name}/verify").json()["status"]
    assert status["state"] == "ok", status
    return name


def key_of(admin: httpx.Client, role: str) -> str:
    made = admin.post("/tokens", json={"name": f"{role}-{uuid.uuid4().hex[:6]}", "role": role})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def other_workspace_key(server: Server) -> str:
    """An admin key of a new workspace in ``server``'s database."""
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'runyard.db'}")
    key = generate_key()
    now = utcnow()
    ws_id, user_id = new_id("ws"), new_id("usr")
    try:
        with db.write() as conn:
            conn.execute(workspaces.insert().values(id=ws_id, name=f"other-{ws_id[-8:]}", settings={},
                                                    created_at=now))
            conn.execute(users.insert().values(id=user_id, workspace_id=ws_id, username="admin", role="admin",
                                               failed_logins=0, created_at=now, updated_at=now))
            conn.execute(tokens.insert().values(
                id=new_id("tok"), workspace_id=ws_id, user_id=user_id, name="other admin", role="admin",
                key_hash=hash_key(key), prefix=key[:10], restrictions={"tools": [], "grants": []},
                created_at=now))
    finally:
        db.engine.dispose()
    return key

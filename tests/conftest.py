"""Shared fixtures: real runyard servers on loopback, on SQLite and (when
``RUNYARD_TEST_DATABASE_URL`` is set) on PostgreSQL."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import BACKENDS, PgDatabase, Server


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class SharedServers:
    """The session's shared servers, one per backend, started on first use and stopped when
    the session ends. pytest tears a session fixture down whenever the next test has another
    ``backend`` (parallel runs interleave the backends file by file), so the servers live here
    rather than in the fixture: a switch back costs nothing."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.running: dict[str, tuple[Server, PgDatabase | None]] = {}

    def get(self, backend: str) -> Server:
        if backend not in self.running:
            pg = PgDatabase.create() if backend == "postgres" else None
            srv = Server(data_dir=self.tmp_path_factory.mktemp(f"runyard-{backend}"),
                         database_url=pg.url if pg else None, slots=8)
            self.running[backend] = (srv, pg)
            srv.start()
        return self.running[backend][0]

    def stop_all(self) -> None:
        for srv, pg in self.running.values():
            srv.stop()
            if pg:
                pg.drop()


@pytest.fixture(scope="session")
def shared_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServers]:
    servers = SharedServers(tmp_path_factory)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture(scope="session")
def server(backend: str, shared_servers: SharedServers) -> Server:
    """One shared server per backend for the session; tests use unique tool names."""
    return shared_servers.get(backend)


@pytest.fixture
def fresh_server(backend: str, tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that restart or kill it."""
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path / "data", database_url=pg.url if pg else None)
    try:
        yield srv
    finally:
        srv.stop(signal.SIGKILL)
        if pg:
            pg.drop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]

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


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server per backend for the session; tests use unique tool names."""
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"runyard-{backend}"), database_url=pg.url if pg else None, slots=8)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


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

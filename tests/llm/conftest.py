"""The language-model tests' servers: the scripted OpenAI-compatible server on loopback,
and one runyard server (per backend) allowed to call it, whose default provider it is."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_llm import FakeLLM
from tests.support.servers import PgDatabase, Server

SECRET_KEY = "sk-live-very-secret-1234567890"


@pytest.fixture(scope="package")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="package")
def llm_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"llm-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_OUTBOUND_ALLOW": "127.0.0.1"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture(scope="package")
def admin(llm_server: Server) -> Iterator[httpx.Client]:
    with llm_server.client(timeout=60) as client:
        yield client


@pytest.fixture(scope="package")
def provider(admin: httpx.Client, fake: FakeLLM) -> dict:
    """The workspace default: the scripted server (one retry, a short timeout)."""
    made = admin.post("/llm/providers", json={"name": "scripted", "base_url": fake.base_url, "api_key": SECRET_KEY,
                                              "default_model": "fake-model", "timeout_s": 1.5, "max_retries": 1})
    assert made.status_code == 201, made.text
    return made.json()



"""The SDK's ``client.llm`` and ``datasets.query(natural_language=True)`` against the real
server, and a provider from the environment (RUNYARD_LLM_*)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.sdk import Client
from runyard.sdk.errors import ConflictError, PermissionDeniedError
from tests.llm.conftest import SECRET_KEY
from tests.support.fake_llm import FakeLLM, json_answer
from tests.support.servers import Server

ROWS = [{"city": "Oslo", "amount": 3}, {"city": "Rome", "amount": 4}]


@pytest.fixture
def client(llm_server: Server, provider: dict) -> Iterator[Client]:
    with Client(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as c:
        yield c


def test_sdk_providers_and_features(client, llm_server, fake, unique):
    name = f"sdk-{unique}"
    made = client.llm.create_provider(name, base_url=fake.base_url, default_model="m", api_key="sk-sdk-key-123456",
                                      default=False)
    assert made.name == name and made.has_api_key and made.default is False and made.masked_api_key
    assert name in {p.name for p in client.llm.list_providers()}
    assert client.llm.get_provider(name).id == made.id
    changed = client.llm.update_provider(name, default_model="m2", api_key=None)
    assert changed.default_model == "m2" and changed.has_api_key is False
    client.llm.delete_provider(name)
    assert name not in {p.name for p in client.llm.list_providers()}

    ns = f"sdk-{unique}"
    client.namespaces.create(ns)
    client.datasets.ingest(ns, "sales", ROWS, create=True)
    sql = f'SELECT sum(amount) AS total FROM "{ns}"."sales"'
    fake.script(json_answer({"sql": sql}))
    result = client.datasets.query("total sold?", namespace=ns, natural_language=True, model="big")
    assert result.sql == sql and result.rows == [{"total": 7}] and result.trace[0]["model"]
    assert fake.requests[0].body["model"] == "big"

    fake.script(json_answer({"data_description": "Sales.", "field_definitions": {"city": "City.", "amount": "Units."}}))
    described = client.llm.infer_description(ns, "sales", sample=ROWS)
    assert described.source == "model" and described.field_definitions == {"city": "City.", "amount": "Units."}

    viewer_key = client.tokens.create(f"v-{unique}", role="viewer").key
    with Client(api_key=viewer_key, base_url=llm_server.base_url) as viewer, pytest.raises(PermissionDeniedError):
        list(viewer.llm.list_providers())


@pytest.fixture
def env_server(backend: str, tmp_path, fake: FakeLLM) -> Iterator[Server]:
    if backend != "sqlite":
        pytest.skip("the provider set by RUNYARD_LLM_* environment variables involves no database: it is tested once, on SQLite")
    srv = Server(data_dir=tmp_path / "data", extra_env={
        "RUNYARD_OUTBOUND_ALLOW": "127.0.0.1", "RUNYARD_LLM_BASE_URL": fake.base_url,
        "RUNYARD_LLM_API_KEY": SECRET_KEY, "RUNYARD_LLM_MODEL": "env-model"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_provider_from_the_environment(env_server, fake, unique):
    with Client(api_key=env_server.admin_key, base_url=env_server.base_url, timeout=60) as c:
        [env] = list(c.llm.list_providers())
        assert env.name == "env" and env.source == "environment" and env.default and env.default_model == "env-model"
        assert SECRET_KEY not in str(env.to_dict())
        ns = f"env-{unique}"
        c.namespaces.create(ns)
        c.datasets.ingest(ns, "sales", ROWS, create=True)
        fake.script(json_answer({"sql": f'SELECT count(*) AS n FROM "{ns}"."sales"'}))
        assert c.datasets.query("how many?", namespace=ns, natural_language=True).rows == [{"n": 2}]
        seen = fake.requests[0]
        assert seen.body["model"] == "env-model" and seen.headers["Authorization"] == f"Bearer {SECRET_KEY}"
        # A provider made with the API and marked default takes over from the environment's.
        c.llm.create_provider("mine", base_url=fake.base_url, default_model="api-model")
        fake.script(json_answer({"sql": f'SELECT count(*) AS n FROM "{ns}"."sales"'}))
        c.datasets.query("how many?", namespace=ns, natural_language=True)
        assert fake.requests[0].body["model"] == "api-model"
        with pytest.raises(ConflictError):
            c.llm.create_provider("mine", base_url=fake.base_url, default_model="x")


def test_cli_query_natural_language(llm_server, client, fake, tmp_path, unique):
    from typer.testing import CliRunner

    from runyard.cli.main import app

    ns = f"cli-{unique}"
    client.namespaces.create(ns)
    client.datasets.ingest(ns, "sales", ROWS, create=True)
    sql = f'SELECT city FROM "{ns}"."sales" ORDER BY city'
    fake.script(json_answer({"sql": sql}))
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": llm_server.base_url, "RUNYARD_API_KEY": llm_server.admin_key}
    result = CliRunner().invoke(app, ["data", "query", "which cities?", "--nl", "-n", ns, "--format", "csv"],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [line.strip('"') for line in result.stdout.splitlines()] == ["city", "Oslo", "Rome"]
    assert "SQL: " + sql in result.stderr.replace("\n", "")
    assert len(fake.requests) == 1  # one model call: the SQL is planned once, then run

"""``client.datasets.cleaning`` / ``get_cleaning`` (sync and async) and ``runyard data clean``
against the real server and the scripted model server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from runyard.cli.main import app
from runyard.sdk import AsyncClient, Client
from runyard.sdk.errors import ConflictError
from tests.support.fake_llm import FakeLLM, json_answer
from tests.support.servers import Server

ROWS = [{"name": " Ann ", "age": 31}, {"name": "bob", "age": None}, {"name": "Cy", "age": 40}]
SQL = "SELECT trim(name) AS name, age FROM source WHERE age IS NOT NULL"


@pytest.fixture
def client(llm_server: Server, provider: dict) -> Iterator[Client]:
    with Client(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as c:
        yield c


def _source(client: Client, ns: str) -> str:
    client.namespaces.create(ns)
    client.datasets.ingest(ns, "people", ROWS, create=True)
    return ns


def test_sdk_cleaning(client: Client, fake: FakeLLM, unique: str) -> None:
    ns = _source(client, f"sdkc-{unique}")
    fake.script(json_answer({"sql": SQL, "explanation": "trimmed"}))
    queued = client.datasets.cleaning(ns, "people", ["Trim names", "Drop rows without an age"],
                                      output_namespace=ns, output_dataset="clean")
    assert queued.id.startswith("cln_") and queued.prompts == ["Trim names", "Drop rows without an age"]
    done = client.datasets.get_cleaning(ns, "people", queued, wait=60)
    assert done.is_finished and done.status == "succeeded" and done.sql == SQL and done.output_rows == 2
    assert done.output["dataset_id"] and done.usage["total_tokens"] == 18
    assert client.datasets.get(ns, "clean").rows == 2
    with pytest.raises(ConflictError) as caught:
        client.datasets.cleaning(ns, "people", ["again"], output_namespace=ns, output_dataset="clean")
    assert caught.value.code == "dataset_exists"
    # wait=True on the request: a failed task comes back as failed, nothing created.
    fake.script(json_answer({"sql": "DELETE FROM source"}))
    failed = client.datasets.cleaning(ns, "people", ["delete it"], output_namespace=ns, output_dataset="gone",
                                      wait=60)
    assert failed.status == "failed" and failed.error and failed.error["code"] == "read_only_sql"


def test_async_sdk_cleaning(llm_server: Server, provider: dict, client: Client, fake: FakeLLM, unique: str) -> None:
    ns = _source(client, f"sdka-{unique}")

    async def run() -> tuple[str, str]:
        async with AsyncClient(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as ac:
            fake.script(json_answer({"sql": SQL}))
            task = await ac.datasets.cleaning(ns, "people", ["trim"], output_namespace=ns, output_dataset="a",
                                              wait=60)
            again = await ac.datasets.get_cleaning(ns, "people", task.id)
            return task.status, again.status

    assert asyncio.run(run()) == ("succeeded", "succeeded")


def _cli(llm_server: Server, tmp_path, *args: str):
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": llm_server.base_url, "RUNYARD_API_KEY": llm_server.admin_key}
    return CliRunner().invoke(app, ["data", *args], env=env, catch_exceptions=False)


def test_cli_data_clean(llm_server: Server, client: Client, fake: FakeLLM, tmp_path, unique: str) -> None:
    ns = _source(client, f"clic-{unique}")
    fake.script(json_answer({"sql": SQL}))
    r = _cli(llm_server, tmp_path, "clean", f"{ns}/people", "--prompt", "Trim names", "-p", "Drop empty ages",
             "--output", f"{ns}/clean", "--wait", "--json")
    assert r.exit_code == 0, r.output
    task = json.loads(r.stdout)
    assert task["status"] == "succeeded" and task["sql"] == SQL
    shown = _cli(llm_server, tmp_path, "cleaning", f"{ns}/people", task["id"])
    assert shown.exit_code == 0 and "succeeded" in shown.stdout and "trim(name)" in shown.stdout
    fake.script(json_answer({"sql": "SELECT * FROM read_csv('/etc/passwd')"}))
    r = _cli(llm_server, tmp_path, "clean", f"{ns}/people", "-p", "x", "-o", f"{ns}/bad", "--wait")
    assert r.exit_code == 1 and "forbidden_function" in r.stdout, r.output
    r = _cli(llm_server, tmp_path, "clean", f"{ns}/people", "-p", "x", "-o", f"{ns}/clean")
    assert r.exit_code != 0 and "dataset_exists" in r.output

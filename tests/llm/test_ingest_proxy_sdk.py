"""``client.ingest_proxy`` (sync and async: start, typed events streamed with reconnects,
hook, trace) and ``runyard data auto-ingest``, against the real server and the scripted
model server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runyard import AsyncClient
from runyard.cli.main import app
from runyard.sdk import Client
from runyard.sdk.errors import ConflictError
from runyard.sdk.models import IngestProxyEvent, IngestProxyRun, IngestProxyTrace
from tests.support.fake_llm import FakeLLM, json_answer, status
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

ROWS = [{"city": "Oslo", "pop": "709000"}, {"city": "Rome", "pop": "2873000"}, {"city": "Lima", "pop": "9750000"}]
SCHEMA = {"dataset_name": "cities", "data_description": "Cities and their population.", "questions": [],
          "fields": [{"name": "city", "type": "string", "description": "the city", "source": "city"},
                     {"name": "population", "type": "int", "description": "inhabitants", "source": "pop"}]}


@pytest.fixture
def client(llm_server: Server, provider: dict) -> Iterator[Client]:
    with Client(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as c:
        yield c


def ns() -> str:
    return f"sdkproxy_{uuid.uuid4().hex[:8]}"


def test_sdk_start_stream_hook_and_trace(client: Client, fake: FakeLLM) -> None:
    fake.script(json_answer(SCHEMA))
    run = client.ingest_proxy.start(ns(), data=ROWS, enable_human_in_the_loop=True, ontology=False,
                                    user_prompt="cities")
    assert isinstance(run, IngestProxyRun) and run.status == "running"
    events = list(client.ingest_proxy.stream(run.id, until_hook=True))
    assert all(isinstance(e, IngestProxyEvent) for e in events)
    hook = events[-1].data["hook"]
    assert events[-1].type == "hook" and hook["kind"] == "schema_review"
    waiting = client.ingest_proxy.get(run.id)
    assert waiting.status == "waiting_for_input" and waiting.hook["id"] == hook["id"]
    assert waiting.schema_["fields"][1]["name"] == "population"
    with pytest.raises(ConflictError):
        client.ingest_proxy.hook(run.id, kind="clarification", answer="?")
    client.ingest_proxy.hook(run.id, kind="schema_review", approved=True)
    rest = list(client.ingest_proxy.stream(run.id, start_index=events[-1].index + 1))
    assert rest[0].index == events[-1].index + 1 and rest[-1].type == "complete"
    assert rest[-1].data["ingested"] == 3
    trace = client.ingest_proxy.trace(run.id)
    assert isinstance(trace, IngestProxyTrace) and trace.tokens["total_tokens"] == 18
    assert trace.model_calls[0].prompt.count("Oslo") >= 1


def test_async_sdk_streams_to_the_end(llm_server: Server, provider: dict, fake: FakeLLM) -> None:
    fake.script(status(500), status(500))

    async def go() -> list[IngestProxyEvent]:
        async with AsyncClient(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as ac:
            run = await ac.ingest_proxy.start(ns(), data=ROWS)
            return [event async for event in ac.ingest_proxy.stream(run.id)]

    events = asyncio.run(go())
    assert events[-1].type == "error" and events[-1].data["code"].startswith("llm_")


def _cli(llm_server: Server, tmp_path: Path, *args: str, given: str | None = None):
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": llm_server.base_url, "RUNYARD_API_KEY": llm_server.admin_key}
    return CliRunner().invoke(app, ["data", "auto-ingest", *args], env=env, input=given, catch_exceptions=False)


def test_cli_auto_ingest_streams_and_reviews(llm_server: Server, provider: dict, fake: FakeLLM, client: Client,
                                             tmp_path: Path) -> None:
    rows = tmp_path / "cities.csv"
    rows.write_text("city,pop\nOslo,709000\nRome,2873000\nLima,9750000\n")
    namespace = ns()
    fake.script(json_answer(SCHEMA))
    result = _cli(llm_server, tmp_path, str(rows), "--namespace", namespace, "--review", "--no-ontology",
                  given="y\n")
    assert result.exit_code == 0, result.output
    assert "population: int" in result.stderr and "Approve this schema?" in result.stderr
    assert "[ingest] ingested 3 rows" in result.stderr
    out = json.loads(result.stdout[result.stdout.index("{"):])  # after the answer the test runner echoes
    assert out["dataset"] == "cities" and out["ingested"] == 3
    assert client.datasets.get(namespace, "cities").rows == 3

    result = _cli(llm_server, tmp_path, str(rows), "-n", namespace, "--dataset", "plain", "--no-model", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "complete" and events[-1]["data"]["schema_source"] == "inferred_without_model"

    result = _cli(llm_server, tmp_path, str(rows), "-n", namespace, "--review", "--no-model", given="n\n")
    assert result.exit_code == 1 and "schema_rejected" in result.stderr

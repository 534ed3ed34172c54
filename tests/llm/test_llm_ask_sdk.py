"""``client.llm.ask`` (typed events read from the SSE stream as they come, sync and async),
``client.llm.autorag`` and ``runyard data ask``, against the real server and the scripted
model server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from runyard import AsyncClient
from runyard.cli.main import app
from runyard.sdk import Client
from runyard.sdk.errors import NotFoundError, ServerError
from runyard.sdk.models import AskAnswer, AskError, AskPlan, AskStep
from tests.support.fake_llm import answer, slow, status, tool_call
from tests.support.servers import Server

ROWS = [{"city": "Oslo", "amount": 3}, {"city": "Rome", "amount": 4}, {"city": "Lima", "amount": 5}]


@pytest.fixture
def client(llm_server: Server, provider: dict) -> Iterator[Client]:
    with Client(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as c:
        yield c


def _namespace(client: Client, ns: str) -> str:
    client.namespaces.create(ns)
    client.datasets.ingest(ns, "sales", ROWS, create=True)
    return ns


def test_sdk_ask_streams_typed_events_as_they_come(client, fake, unique):
    ns = _namespace(client, f"asks-{unique}")
    sql = f'SELECT sum(amount) AS total FROM "{ns}"."sales"'
    fake.script(tool_call("run_sql", {"sql": f'DELETE FROM "{ns}"."sales"'}), tool_call("run_sql", {"sql": sql}),
                slow(1.0, answer("12 units.")))
    started = time.monotonic()
    seen: list[tuple[object, float]] = []
    for event in client.llm.ask("How much was sold?", namespace=ns, helper_prompt="Be brief.", model="big"):
        seen.append((event, time.monotonic() - started))
    events = [e for e, _ in seen]
    assert [type(e) for e in events] == [AskPlan, AskStep, AskStep, AskAnswer]
    assert [e.event for e in events] == ["plan", "step", "step", "answer"]
    plan, refused, ran, done = events
    assert plan.datasets == [f"{ns}.sales"] and plan.question == "How much was sold?"
    assert refused.index == 1 and refused.error["code"] == "read_only_sql" and refused.rows is None
    assert ran.index == 2 and ran.sql == sql and ran.rows == [{"total": 12}] and ran.row_count == 1
    assert done.answer == "12 units." and [s.index for s in done.steps] == [1, 2] and len(done.trace) == 3
    # The steps were handed out before the (slow) answer existed: read as they arrived.
    assert seen[2][1] < seen[3][1] - 0.5
    assert "Be brief." in fake.requests[0].prompt and fake.requests[0].body["model"] == "big"


def test_sdk_ask_error_event_and_refusal(client, fake, unique):
    ns = _namespace(client, f"askse-{unique}")
    fake.script(status(500), status(500))
    events = list(client.llm.ask("?", namespace=ns))
    assert [type(e) for e in events] == [AskPlan, AskError]
    assert events[1].code == "llm_error" and events[1].status == 502 and events[1].message
    with pytest.raises(NotFoundError):
        list(client.llm.ask("?", namespace=f"nope-{unique}"))


def test_sdk_autorag(client, fake, unique):
    ns = _namespace(client, f"rags-{unique}")
    sql = f'SELECT count(*) AS n FROM "{ns}"."sales"'
    fake.script(tool_call("run_sql", {"sql": sql}), answer("There are 3 sales."))
    got = client.llm.autorag("How many sales?", namespace=ns, max_steps=2)
    assert isinstance(got, AskAnswer) and got.answer == "There are 3 sales."
    assert got.steps[0].rows == [{"n": 3}] and got.steps[0].sql == sql and len(got.trace) == 2
    fake.script(tool_call("run_sql", {"sql": sql}), tool_call("run_sql", {"sql": sql}))
    with pytest.raises(ServerError) as raised:
        client.llm.autorag("?", namespace=ns, max_steps=1)
    assert raised.value.code == "llm_too_many_steps"


def test_async_ask_and_autorag(llm_server, client, fake, unique):
    ns = _namespace(client, f"asksa-{unique}")
    sql = f'SELECT city FROM "{ns}"."sales" ORDER BY city'

    async def run() -> tuple[list, AskAnswer]:
        async with AsyncClient(api_key=llm_server.admin_key, base_url=llm_server.base_url, timeout=60) as ac:
            fake.script(tool_call("run_sql", {"sql": sql}), answer("Lima, Oslo, Rome."))
            events = [e async for e in ac.llm.ask("Which cities?", namespace=ns)]
            fake.script(answer("Nothing to query."))
            return events, await ac.llm.autorag("Hello?", namespace=ns)

    events, rag = asyncio.run(run())
    assert [e.event for e in events] == ["plan", "step", "answer"]
    assert events[1].rows == [{"city": "Lima"}, {"city": "Oslo"}, {"city": "Rome"}]
    assert events[2].answer == "Lima, Oslo, Rome."
    assert rag.answer == "Nothing to query." and rag.steps == []


def _cli(llm_server: Server, tmp_path, *args: str):
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": llm_server.base_url, "RUNYARD_API_KEY": llm_server.admin_key}
    return CliRunner().invoke(app, ["data", "ask", *args], env=env, catch_exceptions=False)


def test_cli_data_ask(llm_server, client, fake, tmp_path, unique):
    ns = _namespace(client, f"askc-{unique}")
    sql = f'SELECT city, amount FROM "{ns}"."sales" ORDER BY amount DESC'
    fake.script(tool_call("run_sql", {"sql": sql}), answer("Lima sold the most."))
    result = _cli(llm_server, tmp_path, "Which city sold the most?", "--namespace", ns)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Lima sold the most.\n"
    err = result.stderr.replace("\n", "")
    assert f"{ns}.sales" in err and "Step 1" in err and "SQL: " + sql in err
    assert "3 row(s): city=Lima, amount=5" in err

    fake.script(tool_call("run_sql", {"sql": sql}), answer("Lima."))
    result = _cli(llm_server, tmp_path, "Which city?", "-n", ns, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in lines] == ["plan", "step", "answer"]
    assert lines[1]["sql"] == sql and lines[1]["row_count"] == 3 and lines[2]["answer"] == "Lima."

    fake.script(status(500), status(500))
    result = _cli(llm_server, tmp_path, "?", "-n", ns, "--json")
    assert result.exit_code == 1
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["plan", "error"]
    fake.script(status(500), status(500))
    result = _cli(llm_server, tmp_path, "?", "-n", ns)
    assert result.exit_code == 1 and result.stdout == "" and "llm_error" in result.stderr

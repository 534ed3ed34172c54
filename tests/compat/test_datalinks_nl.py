"""The official ``datalinks`` client's natural-language and ontology methods (2.2.0, unchanged)
against a real runyard server: query_data(is_natural_language=True), ask (SSE), autorag,
get_ontology and curate_links, served from runyard's model features and ontology. The model
is the scripted OpenAI-compatible server on loopback, the workspace's default provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from datalinks.api import AsyncDataLinksAPI, DataLinksAPI, DataLinksRequestError, DLConfig

from tests.compat.test_datalinks_client import dl, name
from tests.compat.test_datalinks_links import Pair
from tests.support.fake_llm import FakeLLM, answer, json_answer, server_with_scripted_model, status, tool_call
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

SALES = [{"city": "Oslo", "amount": 3}, {"city": "Rome", "amount": 4}, {"city": "Lima", "amount": 5}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def llm_server(backend: str, tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM) -> Iterator[Server]:
    with server_with_scripted_model(backend, tmp_path_factory.mktemp(f"compat-nl-{backend}"), fake) as srv:
        yield srv


@pytest.fixture
def sales(llm_server: Server) -> DataLinksAPI:
    api = dl(llm_server, name("nl"), "sales")
    api.create_space(data_description="sales by city")
    assert api.ingest(SALES).failed == []
    return api


def table(api: DataLinksAPI) -> str:
    return f'"{api.config.namespace}"."sales"'


def error_code(exc: DataLinksRequestError) -> str:
    assert isinstance(exc.content, bytes)
    return json.loads(exc.content)["error_code"]


# -- natural-language query -------------------------------------------------------------------
def test_a_natural_language_query_runs_the_models_sql(sales: DataLinksAPI, fake: FakeLLM) -> None:
    sql = f"SELECT city, amount FROM {table(sales)} WHERE amount > 3 ORDER BY city"
    fake.script(json_answer({"sql": sql, "explanation": "filters"}))
    rows = sales.query_data("Which cities sold more than 3?", is_natural_language=True)
    assert rows == [{"city": "Lima", "amount": 5}, {"city": "Rome", "amount": 4}]
    [request] = fake.requests
    assert "Which cities sold more than 3?" in request.prompt and table(sales) in request.prompt


def test_a_natural_language_query_that_writes_is_refused(sales: DataLinksAPI, fake: FakeLLM) -> None:
    fake.script(json_answer({"sql": f"DELETE FROM {table(sales)}"}))
    assert sales.query_data("remove everything", is_natural_language=True) is None  # the client's failure
    assert len(sales.query_data("*") or []) == 3  # nothing ran


# -- ask (SSE) and autorag ----------------------------------------------------------------------
def test_ask_streams_plan_steps_and_the_answer_as_the_client_reads_them(sales: DataLinksAPI,
                                                                       fake: FakeLLM) -> None:
    sql = f"SELECT count(*) AS n FROM {table(sales)}"
    fake.script(tool_call("run_sql", {"sql": f"DELETE FROM {table(sales)}"}), tool_call("run_sql", {"sql": sql}),
                answer("There are 3 sales."))
    with sales.ask("How many sales?", helper_prompt="Be brief.") as stream:
        events = list(stream)
        assert stream.status_code == 200
        assert stream.headers is not None and stream.headers["content-type"].startswith("text/event-stream")
    assert [e.type for e in events] == ["plan", "step", "step", "answer"]
    plan, refused, counted, final = (e.data for e in events)
    assert plan["steps"] == [] and isinstance(plan["reasoning"], str)
    assert plan["datasets"] == [f"{sales.config.namespace}.sales"]
    assert refused["index"] == 0 and refused["data"] == [] and refused["error"]["code"] == "read_only_sql"
    assert counted["index"] == 1 and counted["query"] == sql and counted["data"] == [{"n": 3}]
    assert {"instruction", "reasoning"} <= counted.keys()
    assert final["response"] == "There are 3 sales."
    assert "Be brief." in fake.requests[0].prompt
    assert len(sales.query_data("*") or []) == 3


def test_ask_failures_arrive_as_an_error_event_or_the_clients_error(llm_server: Server, sales: DataLinksAPI,
                                                                     fake: FakeLLM) -> None:
    fake.script(status(500), status(500))
    events = list(sales.ask("?"))
    assert [e.type for e in events] == ["plan", "error"] and events[1].data["code"] == "llm_error"
    assert events[1].data["message"]
    unseen = dl(llm_server, name("nope"), "sales")
    with pytest.raises(DataLinksRequestError) as caught:
        list(unseen.ask("?"))
    assert caught.value.status_code == 404


def test_autorag_answers_with_the_steps(sales: DataLinksAPI, fake: FakeLLM) -> None:
    sql = f"SELECT sum(amount) AS total FROM {table(sales)}"
    fake.script(tool_call("run_sql", {"sql": sql}), answer("12 units were sold in all."))
    result = sales.autorag("How much was sold?")
    assert result.status_code == 200
    assert result["response"] == "12 units were sold in all."
    [step] = result["steps"]
    assert (step["index"], step["query"], step["data"]) == (0, sql, [{"total": 12}])
    assert {"instruction", "reasoning"} <= step.keys()


def test_autorag_failures_raise_in_the_clients_error(sales: DataLinksAPI, fake: FakeLLM) -> None:
    fake.script(answer(""))
    with pytest.raises(DataLinksRequestError) as caught:
        sales.autorag("?")
    assert caught.value.status_code == 502 and error_code(caught.value) == "llm_invalid_response"
    for kwargs in ({"conversation_id": "c-1"}, {"stage_models": {"plan": {"model": "m", "provider": "p"}}}):
        with pytest.raises(DataLinksRequestError) as caught:
            sales.autorag("?", **kwargs)
        assert caught.value.status_code == 501 and error_code(caught.value) == "not_implemented"


def test_the_async_client_asks_too(llm_server: Server, sales: DataLinksAPI, fake: FakeLLM) -> None:
    async def main() -> None:
        config = DLConfig(host=f"{llm_server.base_url}/compat/datalinks", apikey=llm_server.admin_key,
                          namespace=sales.config.namespace, objectname="sales")
        async with AsyncDataLinksAPI(config) as api:
            fake.script(answer("Three."))
            result = await api.autorag("How many?")
            assert result["response"] == "Three." and result["steps"] == []
            fake.script(answer("Three again."))
            events = [e async for e in api.ask("How many?")]
            assert [e.type for e in events] == ["plan", "answer"]

    asyncio.run(main())


def test_without_a_provider_the_client_is_told_so(server: Server) -> None:
    api = dl(server, name("np"), "sales")
    api.create_space()
    with pytest.raises(DataLinksRequestError) as caught:
        api.autorag("anything?")
    assert caught.value.status_code == 409 and error_code(caught.value) == "llm_not_configured"
    with pytest.raises(DataLinksRequestError) as caught:
        list(api.ask("anything?"))
    assert caught.value.status_code == 409
    assert api.query_data("anything?", is_natural_language=True) is None


# -- the ontology ----------------------------------------------------------------------------------
def test_get_ontology_answers_the_active_links_of_the_dataset(server: Server) -> None:
    pair = Pair(server)
    assert pair.orders.get_ontology() == []
    assert pair.add() is True
    [link] = pair.orders.get_ontology() or []
    assert link.origin == f"ri.admin.{pair.sales}.orders.customer"
    assert link.destination == f"ri.admin.{pair.crm}.customers.cid"
    assert (link.match_type, link.hits) == ("ExactMatch", 20)
    assert [lk.origin for lk in pair.customers.get_ontology() or []] == [link.origin]  # from either end
    missing = dl(server, pair.sales, "nope")
    assert missing.get_ontology() is None  # 404: the client's None


def test_curate_links_returns_or_activates_the_selection(server: Server) -> None:
    pair = Pair(server)
    # the suggestions for the curator to judge (as the background pass after ingestion makes)
    assert pair.orders.rebuild_links(pair.orders.query_data("*") or []) is not None
    proposed = pair.orders.curate_links(dataset="orders")
    assert proposed is not None and proposed.datasets_processed == 1
    assert proposed.total_selected >= 1, proposed
    assert proposed.curated_links is not None and len(proposed.curated_links) == proposed.total_selected
    assert pair.orders.get_ontology() == []  # nothing activated
    activated = pair.orders.curate_links(dataset="orders", activate=True)
    assert activated is not None and activated.curated_links is None
    assert len(pair.orders.get_ontology() or []) >= activated.total_selected

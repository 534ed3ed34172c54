"""The official ``datalinks`` client's ingestion proxy (``IngestProxyAPI``/``PipelineRun``,
unchanged) against a real runyard server at /compat/datalinks-proxy: a pipeline run modelled
by the scripted OpenAI-compatible server, its NDJSON stream (and a reconnect from
``startIndex``), its trace and a human-in-the-loop hook."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from datalinks.api import DataLinksRequestError
from datalinks.api.ingest_proxy import IngestProxyAPI, IngestProxyConfig, PipelineRun

from tests.support.fake_llm import FakeLLM, json_answer, server_with_scripted_model
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

ROWS = [{"sku": "A-1", "price": "9.5", "stock": "3"}, {"sku": "B-2", "price": "12", "stock": "0"},
        {"sku": "C-3", "price": "7.25", "stock": "11"}]
SCHEMA = {"dataset_name": "products", "data_description": "Products with price and stock.", "questions": [],
          "fields": [{"name": "sku", "type": "string", "description": "stock keeping unit", "source": "sku"},
                     {"name": "price", "type": "float", "description": "price in EUR", "source": "price"},
                     {"name": "stock", "type": "int", "description": "units in stock", "source": "stock"}]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def proxy_server(backend: str, tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM) -> Iterator[Server]:
    with server_with_scripted_model(backend, tmp_path_factory.mktemp(f"compat-proxy-{backend}"), fake) as srv:
        yield srv


def proxy(server: Server, namespace: str, key: str | None = None) -> IngestProxyAPI:
    return IngestProxyAPI(IngestProxyConfig(host=f"{server.base_url}/compat/datalinks-proxy",
                                            datalinks_token=key or server.admin_key, datalinks_username="admin",
                                            namespace=namespace))


def namespace() -> str:
    return f"shop_{uuid.uuid4().hex[:8]}"


def until_end(run: PipelineRun, *, stop_at_hook: bool = False) -> list[dict[str, Any]]:
    events = []
    for event in run:
        events.append(event)
        if stop_at_hook and event["type"] == "hook":
            break
    return events


def test_a_pipeline_run_streams_to_complete_and_its_trace_reads(proxy_server: Server, fake: FakeLLM) -> None:
    fake.script(json_answer(SCHEMA))
    ns = namespace()
    api = proxy(proxy_server, ns)
    run = api.run_pipeline(data=ROWS, user_prompt="a shop's catalogue", max_rows_for_modeling=2,
                           llm={"provider": "scripted", "explosionTemperature": 0.2}, ontology=False)
    assert run.run_id.startswith("run_")
    events = until_end(run)
    assert events[-1]["type"] == "complete", events
    assert events[-1]["data"]["dataset"] == "products" and events[-1]["data"]["ingested"] == 3
    [request] = fake.requests
    assert "a shop's catalogue" in request.prompt and "B-2" in request.prompt and "C-3" not in request.prompt
    trace = api.get_pipeline_trace(run.run_id)
    assert trace is not None and len(trace["model_calls"]) == 1 and trace["tokens"]["total_tokens"] == 18
    assert [s["phase"] for s in trace["steps"]] == ["fetch", "model", "ingest"]
    # a reconnect with startIndex resumes from there (what PipelineRun does after a drop)
    tail = list(api.stream_pipeline(run.run_id, start_index=len(events) - 1))
    assert tail == [events[-1]]
    with proxy_server.client() as admin:
        ds = admin.get(f"/namespaces/{ns}/datasets/products").json()
        assert [(c["name"], c["type"]) for c in ds["columns"]][:3] == [("sku", "string"), ("price", "float"),
                                                                        ("stock", "int")]
        assert admin.get(f"/runs/{run.run_id}").json()["type"] == "ingest_proxy"


def test_a_dropped_stream_reconnects_from_the_events_it_had(proxy_server: Server) -> None:
    """PipelineRun counts the events it yielded and reconnects with startIndex: a stream that
    ends early (here: the first connection answers two events and stops) loses nothing."""
    api = proxy(proxy_server, namespace())
    started = api.run_pipeline(data=ROWS, model=False, ontology=False)
    calls: list[int] = []

    def flaky(run_id: str, start_index: int) -> Iterator[dict[str, Any]]:
        calls.append(start_index)
        for n, event in enumerate(api.stream_pipeline(run_id, start_index)):
            if not calls[1:] and n == 2:
                return  # the connection drops
            yield event

    events = until_end(PipelineRun(started.run_id, flaky))
    assert calls[:2] == [0, 2]
    assert [e["index"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "complete"


def test_a_review_hook_is_answered_through_the_client(proxy_server: Server, fake: FakeLLM) -> None:
    fake.script(json_answer(SCHEMA))
    ns = namespace()
    api = proxy(proxy_server, ns)
    run = api.run_pipeline(data=ROWS, enable_human_in_the_loop=True, ontology=False)
    events = until_end(run, stop_at_hook=True)
    hook = events[-1]["data"]["hook"]
    assert hook["kind"] == "schema_review" and hook["schema"]["fields"][1]["type"] == "float"
    answered = api.resume_pipeline_hook(run.run_id, {"hookId": hook["id"], "approved": True})
    assert answered is not None and answered["status"] == "running"
    rest = list(PipelineRun(run.run_id, api.stream_pipeline).__iter__())
    assert rest[-1]["type"] == "complete"
    # answering again: the run waits on nothing (409, in DataLinks' error shape)
    with pytest.raises(DataLinksRequestError) as refused:
        api.resume_pipeline_hook(run.run_id, {"approved": True})
    assert "hook_not_waiting" in str(refused.value.content)


def test_bad_requests_are_refused_in_datalinks_shape(proxy_server: Server) -> None:
    api = proxy(proxy_server, namespace())
    with pytest.raises(DataLinksRequestError) as both:
        api.run_pipeline(data=ROWS, data_url="https://example.com/rows.json")
    assert "invalid_data_source" in str(both.value.content)
    with pytest.raises(DataLinksRequestError) as metadata:
        api.run_pipeline(data_blob_url="http://169.254.169.254/latest/meta-data")
    assert "outbound_host_refused" in str(metadata.value.content)
    with httpx.Client(base_url=f"{proxy_server.base_url}/compat/datalinks-proxy") as anonymous:
        response = anonymous.post("/api/pipeline", json={"namespace": "x", "data": ROWS})
        assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
        for path in ("/api/pipeline/run_x/stream", "/api/pipeline/run_x/trace"):
            response = anonymous.get(path)
            assert response.status_code == 401 and response.json()["error_code"] == "missing_api_key"
        response = anonymous.get("/api/pipeline/run_missing/trace",
                                 headers={"Authorization": f"Bearer {proxy_server.admin_key}"})
        assert response.status_code == 404 and response.json()["error_code"] == "run_not_found"

"""The official ``datalinks`` client's inference methods (2.2.0, unchanged) against a real
runyard server: preview_ingest and ingest with inference steps (its Pipeline of
ProcessStructured, ProcessUnstructured, Normalize, Validate, ReverseGeo mapped onto
runyard's pipeline model steps), infer_dataset_description and infer_schema. The model is
the scripted OpenAI-compatible server on loopback, the workspace's default provider; a
server without one answers the schema from runyard's own type inference."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from datalinks.pipeline import (
    Normalize,
    NormalizeModes,
    Pipeline,
    ProcessStructured,
    ProcessUnstructured,
    ReverseGeo,
    Validate,
    ValidateModes,
)

from tests.compat.test_datalinks_client import dl, name
from tests.support.fake_llm import FakeLLM, computed, json_answer, server_with_scripted_model
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

PEOPLE = [{"text": "Ann is 31 and lives in Oslo"}, {"text": "Bob is 45 and lives in Rome"},
          {"text": "Cy is 28 and lives in Lima"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def llm_server(backend: str, tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM) -> Iterator[Server]:
    with server_with_scripted_model(backend, tmp_path_factory.mktemp(f"compat-infer-{backend}"), fake) as srv:
        yield srv


def shown(body: Any) -> dict[str, Any]:
    return json.loads(body["messages"][1]["content"].strip().splitlines()[-1])


def extract_people(body: Any) -> dict[str, Any]:
    rows = {}
    for k, row in shown(body).items():
        match = re.match(r"(\w+) is (\d+) and lives in (\w+)", row["text"])
        assert match, row
        rows[k] = {"name": match.group(1), "age": int(match.group(2)), "city": match.group(3)}
    return {"rows": rows}


def test_preview_ingest_extracts_a_table_from_text_nothing_saved(llm_server: Server, fake: FakeLLM) -> None:
    api = dl(llm_server, name("infer"), "people")
    fake.script(computed(extract_people))
    steps = Pipeline(ProcessUnstructured(derive_from="text", model="small-model", provider="openai",
                                         helper_prompt="People, their ages and cities."))
    rows = api.preview_ingest(PEOPLE, inference_steps=steps)
    assert rows == [{"text": PEOPLE[0]["text"], "name": "Ann", "age": 31, "city": "Oslo"},
                    {"text": PEOPLE[1]["text"], "name": "Bob", "age": 45, "city": "Rome"},
                    {"text": PEOPLE[2]["text"], "name": "Cy", "age": 28, "city": "Lima"}]
    [request] = fake.requests
    assert request.body["model"] == "small-model"  # the step's model; runyard's own provider
    assert "People, their ages and cities." in request.prompt
    assert "choose the fields the text holds yourself" in request.prompt  # no schema given: the model names them
    with llm_server.client() as admin:
        assert admin.get(f"/namespaces/{api.config.namespace}").status_code == 404  # nothing saved


def test_ingest_with_inference_steps_schema_and_instructions(llm_server: Server, fake: FakeLLM) -> None:
    api = dl(llm_server, name("infer"), "people")
    api.create_space(data_description="people we know")

    def normalised(body: Any) -> dict[str, Any]:
        return {"rows": {k: {"full_name": r["name"], "years": r["age"], "town": r["city"]}
                         for k, r in shown(body).items()}}

    fake.script(computed(extract_people),
                computed(normalised),
                json_answer({"rows": {"0": {"valid": True}, "1": {"valid": False, "reason": "Rome is not allowed"},
                                      "2": {"valid": True}}}))
    wrapped = [{"blob": json.dumps(p)} for p in PEOPLE]  # structured: the field holds the row as JSON
    steps = Pipeline(ProcessStructured(derive_from="blob"),
                     ProcessUnstructured(derive_from="text", model=None, provider=None),
                     Normalize(target_cols={"full_name": "the person", "years": "age", "town": "city"},
                               mode=NormalizeModes.ALL_IN_ONE, model=None, provider=None),
                     Validate(mode=ValidateModes.ROWS, columns=["town"], model=None, provider=None))
    result = api.ingest(wrapped, inference_steps=steps, schema_definition={"name": "first name", "age": "years",
                                                                           "city": "home city"},
                        data_description="people and where they live",
                        additional_instructions="Ages are whole numbers.")
    assert result.failed == [] and len(result.successful) == 3
    assert [r for r in api.query_data("*") or []] == [{"full_name": "Ann", "years": 31, "town": "Oslo"},
                                                      {"full_name": "Cy", "years": 28, "town": "Lima"}]
    extract, normalise, validate = fake.requests
    assert "- name: first name" in extract.prompt and "Ages are whole numbers." in extract.prompt
    assert "people and where they live" in extract.prompt
    assert "- full_name: the person" in normalise.prompt and "target columns" in normalise.prompt
    assert "plausible, internally consistent record" in validate.prompt and '"town": "Rome"' in validate.prompt
    with llm_server.client() as admin:  # the trace and the rejected row on runyard's side
        [ingestion] = admin.get(f"/namespaces/{api.config.namespace}/datasets/people/ingestions").json()["items"]
        assert ingestion["attributes"]["trace"]["total_calls"] == 3
        assert ingestion["failed_rows"] == 1


def test_reverse_geo_and_unknown_steps_are_refused_clearly(llm_server: Server, fake: FakeLLM) -> None:
    api = dl(llm_server, name("infer"), "places")
    api.create_space()
    fake.script()
    with httpx.Client(base_url=f"{llm_server.base_url}/compat/datalinks",
                      headers={"Authorization": f"Bearer {llm_server.admin_key}"}) as raw:
        geo = raw.post("/infer/preview", json={"data": [{"pos": "59.9,10.7"}], "infer": {"steps": [
            ReverseGeo(derive_from="pos").to_dict()]}})
        assert geo.status_code == 501 and geo.json()["error_code"] == "not_implemented", geo.text
        assert "gazetteer" in geo.json()["message"]
        odd = raw.post("/infer/preview", json={"data": [{"a": 1}], "infer": {"steps": [{"type": "summon"}]}})
        assert odd.status_code == 400 and odd.json()["error_code"] == "invalid_pipeline", odd.text
    # The client's ingest keeps a refused batch in ``failed`` (it logs the 501's message).
    result = api.ingest([{"pos": "59.9,10.7"}], inference_steps=Pipeline(ReverseGeo(derive_from="pos")),
                        max_attempts=1)
    assert result.successful == [] and result.failed == [{"pos": "59.9,10.7"}]
    assert fake.requests == [] and not api.query_data("*")


def test_infer_description_and_schema_from_the_model(llm_server: Server, fake: FakeLLM) -> None:
    api = dl(llm_server, name("infer"), "people")
    sample = [{"name": "Ann", "age": "31", "joined": "2024-01-02"}, {"name": "Bob", "age": "45", "joined": None}]
    fake.script(json_answer({"data_description": "People and when they joined.",
                             "field_definitions": {"name": "first name", "age": "age in years", "ghost": "x"}}))
    described = api.infer_dataset_description(sample, current_description="people")
    assert described["dataDescription"] == "People and when they joined."
    assert described["fieldDefinition"] == {"name": "first name", "age": "age in years"}
    assert "Current description: people" in fake.requests[0].prompt
    fake.script(json_answer({"schema": {"name": "string", "age": "int", "joined": "timestamp", "ghost": "int",
                                        }}))
    schema = api.infer_schema(sample, current_schema={"age": "age in years"})
    assert schema is not None and schema.schema_ == {"name": "string", "age": "int", "joined": "timestamp"}
    assert '"age": "age in years"' in fake.requests[0].prompt


def test_infer_schema_without_a_provider_is_runyards_type_inference(server: Server) -> None:
    api = dl(server, name("infer"), "people")
    schema = api.infer_schema([{"name": "Ann", "age": 31, "joined": "2024-01-02"}, {"name": "Bob", "age": 45}])
    assert schema is not None and schema.schema_ == {"name": "string", "age": "int", "joined": "date"}
    with httpx.Client(base_url=f"{server.base_url}/compat/datalinks",
                      headers={"Authorization": f"Bearer {server.admin_key}"}) as raw:
        labelled = raw.post("/infer/schema", json={"sample": [{"a": 1}]})
        assert labelled.json()["source"] == "statistics"
        described = raw.post("/infer/description", json={"sample": [{"a": 1}]})
        assert described.status_code == 200 and described.json()["source"] == "statistics"
        needs_model = raw.post("/infer/preview", json={"data": [{"t": "x"}], "infer": {"steps": [
            {"type": "table", "deriveFrom": "t"}]}})
        assert needs_model.status_code == 409 and needs_model.json()["error_code"] == "llm_not_configured"


def test_ingest_with_inference_steps_and_entity_resolution(llm_server: Server, fake: FakeLLM) -> None:
    from datalinks.links import ExactMatch, MatchTypeConfig

    api = dl(llm_server, name("infer"), "people")
    api.create_space()
    steps = Pipeline(ProcessUnstructured(derive_from="text", model=None, provider=None))
    schema = {"name": "first name", "age": "years", "city": "home city"}
    config = MatchTypeConfig(exact_match=ExactMatch(targetColumns=["name"]))
    fake.script(computed(extract_people), computed(extract_people))
    assert api.ingest(PEOPLE[:2], inference_steps=steps, schema_definition=schema,
                      entity_resolution=config).failed == []
    again = [{"text": "Ann is 32 and lives in Bergen"}, PEOPLE[2]]
    assert api.ingest(again, inference_steps=steps, schema_definition=schema, entity_resolution=config).failed == []
    rows = api.query_data("*") or []
    assert sorted((r["name"], r["city"]) for r in rows) == [("Ann", "Oslo"), ("Bob", "Rome"), ("Cy", "Lima")]
    # The key columns must be named: the rows' own columns are not the ones the steps leave.
    with httpx.Client(base_url=f"{llm_server.base_url}/compat/datalinks",
                      headers={"Authorization": f"Bearer {llm_server.admin_key}"}) as raw:
        vague = raw.post(f"/ingest/{api.config.namespace}/people", json={
            "data": PEOPLE, "infer": steps.to_list(), "link": {"ExactMatch": {}}})
        assert vague.status_code == 400 and vague.json()["error_code"] == "invalid_entity_resolution", vague.text

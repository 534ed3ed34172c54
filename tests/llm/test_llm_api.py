"""The language-model layer over HTTP, against a real server whose provider is the
scripted OpenAI-compatible server on loopback (allow-listed with RUNYARD_OUTBOUND_ALLOW):
providers (admins only, key encrypted and never returned), natural-language queries,
infer-description, and every failure a provider can cause (nothing saved)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from runyard.config import normalise_database_url
from tests.llm.conftest import SECRET_KEY
from tests.support.api import error_code
from tests.support.fake_llm import answer, json_answer, malformed, slow, status

ROWS = [{"city": "Oslo", "amount": 3, "day": "2024-01-02"}, {"city": "Rome", "amount": 4, "day": "2024-01-03"},
        {"city": "Lima", "amount": 5, "day": "2024-01-04"}]


def _dataset(api: httpx.Client, ns: str, ds: str, rows: list[dict] = ROWS) -> None:
    api.post("/namespaces", json={"name": ns})
    stored = api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows)
    assert stored.status_code in (200, 201), stored.text


# -- providers -----------------------------------------------------------------------------------
def test_providers_crud_key_never_returned_and_encrypted(llm_server, admin, provider, fake, unique):
    assert provider["default"] is True  # the workspace's first provider
    assert provider["has_api_key"] and provider["masked_api_key"] and SECRET_KEY not in json.dumps(provider)
    name = f"second-{unique}"
    made = admin.post("/llm/providers", json={"name": name, "base_url": fake.base_url + "/", "api_key": "sk-other-key-99",
                                              "default_model": "m2"})
    assert made.status_code == 201, made.text
    assert made.json()["default"] is False and made.json()["base_url"] == fake.base_url
    again = admin.post("/llm/providers", json={"name": name, "base_url": fake.base_url, "default_model": "m"})
    assert again.status_code == 409 and error_code(again) == "llm_provider_exists"
    listed = admin.get("/llm/providers")
    assert listed.status_code == 200 and {p["name"] for p in listed.json()["items"]} >= {"scripted", name}
    assert SECRET_KEY not in listed.text and "sk-other-key-99" not in listed.text
    got = admin.get(f"/llm/providers/{made.json()['id']}")
    assert got.status_code == 200 and got.json()["name"] == name
    patched = admin.patch(f"/llm/providers/{name}", json={"default_model": "m3", "timeout_s": 5, "api_key": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["default_model"] == "m3" and patched.json()["has_api_key"] is False
    # Encrypted at rest: the column holds a Fernet token, not the key.
    url = normalise_database_url(llm_server.database_url) if llm_server.database_url else \
        f"sqlite:///{Path(llm_server.data_dir) / 'runyard.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT api_key_encrypted, masked_api_key FROM llm_providers "
                                          "WHERE name = 'scripted'")).one()
    finally:
        engine.dispose()
    assert stored.api_key_encrypted and SECRET_KEY not in stored.api_key_encrypted
    assert stored.api_key_encrypted.startswith("gAAAA") and SECRET_KEY not in stored.masked_api_key
    assert admin.delete(f"/llm/providers/{name}").status_code == 204
    missing = admin.get(f"/llm/providers/{name}")
    assert missing.status_code == 404 and error_code(missing) == "llm_provider_not_found"
    # The default stays where it was.
    assert [p["name"] for p in admin.get("/llm/providers").json()["items"] if p["default"]] == ["scripted"]


def test_providers_are_for_admins_only(llm_server, admin, provider, unique):
    for role in ("viewer", "member"):
        key = admin.post("/tokens", json={"name": f"{role}-{unique}", "role": role}).json()["key"]
        with llm_server.client(key) as c:
            for response in (c.get("/llm/providers"), c.get("/llm/providers/scripted"),
                             c.post("/llm/providers", json={"name": "x", "base_url": "http://127.0.0.1/v1",
                                                            "default_model": "m"}),
                             c.patch("/llm/providers/scripted", json={"default_model": "x"}),
                             c.delete("/llm/providers/scripted")):
                assert response.status_code == 403 and error_code(response) == "insufficient_role", response.text


@pytest.mark.parametrize("url, code", [
    ("http://169.254.169.254/latest", "outbound_host_refused"),
    ("http://10.0.0.1/v1", "outbound_host_refused"),
    ("http://[::1]:8080/v1", "outbound_host_refused"),
    ("ftp://127.0.0.1/v1", "invalid_url"),
])
def test_provider_urls_follow_the_outbound_policy(admin, url, code):
    refused = admin.post("/llm/providers", json={"name": "refused", "base_url": url, "default_model": "m"})
    assert refused.status_code == 400 and error_code(refused) == code, refused.text


# -- natural-language query ----------------------------------------------------------------------
def test_natural_language_query(admin, provider, fake, unique):
    ns = f"nl-{unique}"
    _dataset(admin, ns, "sales")
    sql = f'SELECT city, amount FROM "{ns}"."sales" WHERE amount > 3 ORDER BY city'
    fake.script(json_answer({"sql": sql, "explanation": "filters"}, usage={"prompt_tokens": 100,
                                                                            "completion_tokens": 20}))
    before = admin.get("/usage/daily").text
    r = admin.post("/query", json={"query": "Which cities sold more than 3?", "is_natural_language": True,
                                   "namespace": ns})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sql"] == sql and body["rows"] == [{"city": "Lima", "amount": 5}, {"city": "Rome", "amount": 4}]
    [trace] = body["trace"]
    assert trace["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    assert trace["provider"] == "scripted" and trace["ms"] >= 0
    [request] = fake.requests
    assert "Which cities sold more than 3?" in request.prompt and f'"{ns}"."sales"' in request.prompt
    assert '"city" (string)' in request.prompt
    assert request.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert admin.get("/usage/daily").text != before  # tokens metered
    usage = admin.get("/usage").text
    assert "llm_tokens" in usage, usage
    # explain: the plan and the SQL.
    fake.script(json_answer({"sql": sql}))
    explained = admin.post("/query", json={"query": "Which cities?", "is_natural_language": True,
                                           "namespace": ns, "explain": True})
    assert explained.status_code == 200, explained.text
    assert explained.json()["sql"] == sql and explained.json()["explain"] is not None


@pytest.mark.parametrize("sql, code", [
    ('DELETE FROM "{ns}"."sales"', "read_only_sql"),
    ('SELECT 1; DROP TABLE "{ns}"."sales"', "multiple_statements"),
    ("COPY (SELECT 1) TO '/tmp/x.csv'", "read_only_sql"),
    ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
])
def test_natural_language_sql_that_writes_is_refused(admin, provider, fake, unique, sql, code):
    ns = f"nlw-{unique}"
    _dataset(admin, ns, "sales")
    fake.script(json_answer({"sql": sql.format(ns=ns)}))
    r = admin.post("/query", json={"query": "remove everything", "is_natural_language": True, "namespace": ns})
    assert r.status_code == 400 and error_code(r) == code, r.text
    assert r.json()["error"]["details"]["sql"] == sql.format(ns=ns)
    assert "nothing ran" in r.json()["error"]["message"]
    count = admin.post("/query", json={"query": f'SELECT count(*) AS n FROM "{ns}"."sales"'})
    assert count.json()["rows"] == [{"n": 3}]


def test_natural_language_prompt_holds_only_readable_schemas(llm_server, admin, provider, fake, unique):
    mine, other = f"mine-{unique}", f"other-{unique}"
    _dataset(admin, mine, "visible_people")
    _dataset(admin, other, "hidden_salaries", [{"employee": "x", "salary_secret_col": 1}])
    key = admin.post("/tokens", json={"name": f"g-{unique}", "role": "viewer", "restrictions": {
        "grants": [{"namespace": mine, "access": "read"}]}}).json()["key"]
    with llm_server.client(key) as g:
        fake.script(json_answer({"sql": f'SELECT count(*) AS n FROM "{mine}"."visible_people"'}))
        r = g.post("/query", json={"query": "how many people?", "is_natural_language": True})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [{"n": 3}]
        prompt = fake.requests[0].prompt
        assert "visible_people" in prompt
        assert other not in prompt and "hidden_salaries" not in prompt and "salary_secret_col" not in prompt
        # A model naming a dataset the key cannot read: refused before anything runs.
        fake.script(json_answer({"sql": f'SELECT * FROM "{other}"."hidden_salaries"'}))
        r = g.post("/query", json={"query": "salaries?", "is_natural_language": True})
        assert r.status_code == 403 and error_code(r) == "dataset_access_denied", r.text
        # Naming the other namespace outright: not visible to this key.
        fake.script()
        r = g.post("/query", json={"query": "salaries?", "is_natural_language": True, "namespace": other})
        assert r.status_code in (403, 404), r.text
        assert fake.requests == []


def test_natural_language_unanswerable_and_cursor(admin, provider, fake, unique):
    ns = f"nlu-{unique}"
    _dataset(admin, ns, "sales")
    fake.script(json_answer({"sql": None, "explanation": "no weather data"}))
    r = admin.post("/query", json={"query": "weather?", "is_natural_language": True, "namespace": ns})
    assert r.status_code == 400 and error_code(r) == "question_unanswerable"
    assert "no weather data" in r.json()["error"]["message"]
    r = admin.post("/query", json={"query": "x", "is_natural_language": True, "cursor": "abc"})
    assert r.status_code == 400 and error_code(r) == "validation_error"
    r = admin.post("/query", json={"query": "SELECT 1", "provider": "scripted"})
    assert r.status_code == 400 and error_code(r) == "validation_error"


def test_named_provider_and_model_per_call(admin, provider, fake, unique):
    ns = f"nlp-{unique}"
    _dataset(admin, ns, "sales")
    fake.script(json_answer({"sql": f'SELECT 1 AS one FROM "{ns}"."sales" LIMIT 1'}))
    r = admin.post("/query", json={"query": "one", "is_natural_language": True, "namespace": ns,
                                   "provider": provider["id"], "model": "bigger-model"})
    assert r.status_code == 200, r.text
    assert fake.requests[0].body["model"] == "bigger-model"
    r = admin.post("/query", json={"query": "one", "is_natural_language": True, "provider": "nope"})
    assert r.status_code == 404 and error_code(r) == "llm_provider_not_found"


# -- provider failures: clean, stable codes, nothing saved -----------------------------------------
@pytest.mark.parametrize("replies, status_code, code", [
    ([status(500), status(500)], 502, "llm_error"),
    ([status(429, retry_after="0"), status(503)], 502, "llm_error"),
    ([slow(3.0), slow(3.0)], 504, "llm_timeout"),
    ([malformed()], 502, "llm_invalid_response"),
    ([answer("I think the SQL is SELECT 1")], 502, "llm_invalid_response"),
    ([json_answer({"query": "SELECT 1"})], 502, "llm_invalid_response"),
])
def test_provider_failures_fail_cleanly(admin, provider, fake, unique, replies, status_code, code):
    ns = f"nlf-{unique}"
    _dataset(admin, ns, "sales")
    fake.script(*replies)
    r = admin.post("/query", json={"query": "anything", "is_natural_language": True, "namespace": ns})
    assert r.status_code == status_code and error_code(r) == code, r.text
    assert r.json()["error"]["details"]["provider"] == "scripted"
    assert SECRET_KEY not in r.text
    fake.script(*replies)
    d = admin.post(f"/namespaces/{ns}/datasets/sales/infer-description", json={})
    assert d.status_code == status_code and error_code(d) == code, d.text
    assert admin.get(f"/namespaces/{ns}/datasets/sales").json()["description"] == ""  # nothing saved


def test_retry_then_success(admin, provider, fake, unique):
    ns = f"nlr-{unique}"
    _dataset(admin, ns, "sales")
    fake.script(status(429, retry_after="0"), json_answer({"sql": f'SELECT count(*) AS n FROM "{ns}"."sales"'}))
    r = admin.post("/query", json={"query": "count", "is_natural_language": True, "namespace": ns})
    assert r.status_code == 200, r.text
    assert r.json()["trace"][0]["attempts"] == 2 and len(fake.requests) == 2


# -- infer-description ---------------------------------------------------------------------------
def test_infer_description_with_a_model(admin, provider, fake, unique):
    ns = f"desc-{unique}"
    _dataset(admin, ns, "sales")
    fake.script(json_answer({"data_description": "Daily sales per city.",
                             "field_definitions": {"city": "The city.", "amount": "Units sold.", "day": "The day.",
                                                   "invented": "not a column"}}))
    r = admin.post(f"/namespaces/{ns}/datasets/sales/infer-description",
                   json={"sample": ROWS[:2], "current_description": "sales"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "model" and body["data_description"] == "Daily sales per city."
    assert body["field_definitions"] == {"city": "The city.", "amount": "Units sold.", "day": "The day."}
    assert body["provider"] == "scripted" and body["trace"][0]["usage"]["total_tokens"] == 18
    prompt = fake.requests[0].prompt
    assert f'"{ns}"."sales"' in prompt and "Oslo" in prompt and "amount: int;" in prompt
    assert admin.get(f"/namespaces/{ns}/datasets/sales").json()["description"] == ""  # nothing saved


# -- without a provider (the shared server: no provider, no RUNYARD_LLM_*) -------------------------
def test_without_a_provider(api, unique):
    ns = f"nollm-{unique}"
    _dataset(api, ns, "sales")
    r = api.post("/query", json={"query": "how many?", "is_natural_language": True, "namespace": ns})
    assert r.status_code == 409 and error_code(r) == "llm_not_configured", r.text
    assert "/llm/providers" in r.json()["error"]["message"] and "RUNYARD_LLM_BASE_URL" in r.json()["error"]["message"]
    d = api.post(f"/namespaces/{ns}/datasets/sales/infer-description", json={})
    assert d.status_code == 200, d.text
    body = d.json()
    assert body["source"] == "statistics" and body["provider"] is None and body["trace"] == []
    assert "3 rows" in body["data_description"] and set(body["field_definitions"]) == {"city", "amount", "day"}
    assert body["field_definitions"]["amount"].startswith("Type int;")
    assert api.post(f"/namespaces/{ns}/datasets/sales/infer-description", json={}).json() == body  # deterministic
    named = api.post(f"/namespaces/{ns}/datasets/sales/infer-description", json={"provider": "nope"})
    assert named.status_code == 404 and error_code(named) == "llm_provider_not_found"
    missing = api.post(f"/namespaces/{ns}/datasets/nope/infer-description", json={})
    assert missing.status_code == 404

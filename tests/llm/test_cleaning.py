"""Cleaning tasks over HTTP, against a real server whose provider is the scripted model server:
the model's SQL runs in the sandbox and its rows become a new dataset; every failure (the
target exists, SQL that writes or reads files, the model failing, no access, no provider)
ends with nothing created."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from runyard.config import normalise_database_url
from runyard.ids import new_id
from tests.support.api import error_code
from tests.support.fake_llm import json_answer, malformed, slow, status

ROWS = [{"name": "  Ann ", "age": 31, "city": "oslo"}, {"name": "bob", "age": None, "city": "ROME"},
        {"name": " Cy", "age": 40, "city": "Lima "}, {"name": None, "age": 12, "city": "oslo"}]
CLEAN_SQL = ("SELECT trim(name) AS name, age, upper(trim(city)) AS city FROM source "
             "WHERE name IS NOT NULL AND age IS NOT NULL")


def _dataset(api: httpx.Client, ns: str, ds: str, rows: list[dict] = ROWS) -> None:
    api.post("/namespaces", json={"name": ns})
    stored = api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows)
    assert stored.status_code in (200, 201), stored.text


def _clean(api: httpx.Client, ns: str, ds: str, out: str, prompts: list[str] | None = None,
           out_ns: str | None = None) -> httpx.Response:
    steps = ["Trim the names and cities", "Drop rows without a name or an age", "Upper-case the cities"]
    return api.post(f"/namespaces/{ns}/datasets/{ds}/cleaning", json={
        "prompts": steps if prompts is None else prompts,
        "output_namespace": out_ns or ns, "output_dataset": out})


def _finished(api: httpx.Client, ns: str, ds: str, task_id: str) -> dict:
    got = api.get(f"/namespaces/{ns}/datasets/{ds}/cleaning/{task_id}", params={"wait": 60})
    assert got.status_code == 200, got.text
    assert got.json()["status"] in ("succeeded", "failed"), got.json()
    return got.json()


def _absent(api: httpx.Client, ns: str, ds: str) -> None:
    r = api.get(f"/namespaces/{ns}/datasets/{ds}")
    assert r.status_code == 404 and error_code(r) == "dataset_not_found", r.text


def test_cleaning_end_to_end(admin, provider, fake, unique):
    ns = f"cln-{unique}"
    _dataset(admin, ns, "people")
    fake.script(json_answer({"sql": CLEAN_SQL, "explanation": "trims, drops incomplete rows, upper-cases"}))
    r = _clean(admin, ns, "people", "people_clean")
    assert r.status_code == 202, r.text
    task = r.json()
    assert task["id"].startswith("cln_") and task["status"] in ("pending", "proposing", "running", "succeeded")
    assert task["output"] == {"namespace": ns, "dataset": "people_clean", "dataset_id": None}
    done = _finished(admin, ns, "people", task["id"])
    assert done["status"] == "succeeded", done
    assert done["sql"] == CLEAN_SQL and done["explanation"].startswith("trims")
    assert done["error"] is None and done["provider"] == "scripted" and done["model"] == "fake-model"
    assert done["usage"]["total_tokens"] == 18
    assert done["input_rows"] == 4 and done["output_rows"] == 2 and done["source"]["snapshot"] == 1
    assert done["output"]["dataset_id"].startswith("ds_")
    # The model saw the columns, sample rows and every step in order.
    prompt = fake.requests[0].prompt
    assert '"name": string' in prompt and '"age": int' in prompt and "Ann" in prompt
    assert "1. Trim the names and cities" in prompt and "3. Upper-case the cities" in prompt
    # The new dataset is an ordinary dataset: catalog, statistics, queries.
    view = admin.get(f"/namespaces/{ns}/datasets/people_clean").json()
    assert view["rows"] == 2 and [c["name"] for c in view["columns"]] == ["name", "age", "city"]
    assert [c["type"] for c in view["columns"]] == ["string", "int", "string"]
    q = admin.post("/query", json={"query": f'SELECT name, age, city FROM "{ns}"."people_clean" ORDER BY age'})
    assert q.status_code == 200, q.text
    assert q.json()["rows"] == [{"name": "Ann", "age": 31, "city": "OSLO"}, {"name": "Cy", "age": 40, "city": "LIMA"}]
    # The source is untouched.
    assert admin.get(f"/namespaces/{ns}/datasets/people").json()["rows"] == 4
    # A task is read under its source dataset only.
    other = admin.get(f"/namespaces/{ns}/datasets/people_clean/cleaning/{task['id']}")
    assert other.status_code == 404 and error_code(other) == "cleaning_task_not_found"


def test_target_that_exists_is_409_before_and_at_commit(admin, provider, fake, unique):
    ns = f"clx-{unique}"
    _dataset(admin, ns, "people")
    _dataset(admin, ns, "taken", [{"x": 1}])
    fake.script()
    r = _clean(admin, ns, "people", "taken")
    assert r.status_code == 409 and error_code(r) == "dataset_exists", r.text
    r = _clean(admin, ns, "people", "TAKEN")  # names match without case, as in SQL
    assert r.status_code == 409 and error_code(r) == "dataset_exists", r.text
    assert fake.requests == []  # refused before the model was asked
    # Made by someone else while the model thinks: the commit refuses to write into it.
    fake.script(slow(1.0, json_answer({"sql": CLEAN_SQL})))
    r = _clean(admin, ns, "people", "raced")
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 20
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    made = admin.post(f"/namespaces/{ns}/datasets", json={"name": "raced"})
    assert made.status_code == 201, made.text
    done = _finished(admin, ns, "people", r.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "dataset_exists", done
    raced = admin.get(f"/namespaces/{ns}/datasets/raced").json()
    assert raced["id"] == made.json()["id"] and raced["rows"] == 0  # left as its maker made it


@pytest.mark.parametrize("sql, code", [
    ("COPY source TO '/tmp/cleaning-escape.csv'", "read_only_sql"),
    ("DELETE FROM source WHERE age IS NULL", "read_only_sql"),
    ("CREATE TABLE t AS SELECT * FROM source", "read_only_sql"),
    ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
    ("SELECT * FROM '/etc/passwd'", "forbidden_function"),
    ("SELECT * FROM source; DROP TABLE source", "multiple_statements"),
    ("SELECT getenv('HOME') AS home FROM source", "forbidden_function"),
])
def test_sql_that_writes_or_reads_outside_is_refused(admin, provider, fake, unique, sql, code):
    ns = f"clr-{unique}"
    _dataset(admin, ns, "people")
    fake.script(json_answer({"sql": sql}))
    r = _clean(admin, ns, "people", "out")
    assert r.status_code == 202, r.text
    done = _finished(admin, ns, "people", r.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == code, done
    assert done["sql"] == sql  # what the model proposed is on the record
    _absent(admin, ns, "out")
    assert not Path("/tmp/cleaning-escape.csv").exists()


def test_sql_reading_another_dataset_is_refused(admin, provider, fake, unique):
    ns = f"clo-{unique}"
    _dataset(admin, ns, "people")
    _dataset(admin, ns, "secrets", [{"pin": 1234}])
    for sql in (f'SELECT * FROM "{ns}"."secrets"', "SELECT * FROM secrets", "SELECT * FROM system.main.source"):
        fake.script(json_answer({"sql": sql}))
        r = _clean(admin, ns, "people", "out")
        done = _finished(admin, ns, "people", r.json()["id"])
        assert done["status"] == "failed" and done["error"]["code"] in ("unknown_dataset", "forbidden_table"), done
        _absent(admin, ns, "out")


def test_transform_failing_at_run_time_saves_nothing(admin, provider, fake, unique):
    ns = f"clf-{unique}"
    _dataset(admin, ns, "people")
    fake.script(json_answer({"sql": "SELECT CAST(city AS INTEGER) AS n FROM source"}))
    done = _finished(admin, ns, "people", _clean(admin, ns, "people", "out").json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "query_error", done
    _absent(admin, ns, "out")
    fake.script(json_answer({"sql": "SELECT age AS _id FROM source"}))  # a metadata column's name
    done = _finished(admin, ns, "people", _clean(admin, ns, "people", "out").json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "invalid_output", done
    _absent(admin, ns, "out")


@pytest.mark.parametrize("replies, code", [
    ([status(500), status(500)], "llm_error"),
    ([slow(4.0), slow(4.0)], "llm_timeout"),
    ([malformed(), malformed()], "llm_invalid_response"),
    ([json_answer({"explanation": "no sql here"})], "llm_invalid_response"),
])
def test_model_failures_fail_the_task(admin, provider, fake, unique, replies, code):
    ns = f"clm-{unique}"
    _dataset(admin, ns, "people")
    fake.script(*replies)
    r = _clean(admin, ns, "people", "out")
    assert r.status_code == 202, r.text
    done = _finished(admin, ns, "people", r.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == code, done
    assert done["error"]["message"]
    _absent(admin, ns, "out")


def test_bad_requests(admin, provider, fake, unique):
    ns = f"clb-{unique}"
    _dataset(admin, ns, "people")
    fake.script()
    for prompts, field in (([], "prompts"), (["ok", "  "], "prompts.1"), (["x"] * 11, "prompts"),
                           (["x" * 2001], "prompts.0")):
        r = _clean(admin, ns, "people", "out", prompts=prompts)
        assert r.status_code == 400 and error_code(r) == "invalid_prompts", r.text
        assert r.json()["error"]["details"]["field"] == field
    r = _clean(admin, ns, "people", "bad name")
    assert r.status_code == 400 and error_code(r) == "invalid_dataset_name", r.text
    r = _clean(admin, ns, "nope", "out")
    assert r.status_code == 404 and error_code(r) == "dataset_not_found", r.text
    r = _clean(admin, ns, "people", "out", out_ns=f"missing-{unique}")
    assert r.status_code == 404 and error_code(r) == "namespace_not_found", r.text
    r = admin.post(f"/namespaces/{ns}/datasets/people/cleaning", json={"prompts": ["x"], "output_namespace": ns,
                                                                        "output_dataset": "o", "provider": "nope"})
    assert r.status_code == 404 and error_code(r) == "llm_provider_not_found", r.text
    r = admin.get(f"/namespaces/{ns}/datasets/people/cleaning/cln_00000000000000000000000000")
    assert r.status_code == 404 and error_code(r) == "cleaning_task_not_found"
    r = admin.get(f"/namespaces/{ns}/datasets/people/cleaning/x", params={"wait": 301})
    assert r.status_code == 400
    assert fake.requests == []
    _absent(admin, ns, "out")


def test_access_is_the_keys_own(llm_server, admin, provider, fake, unique):
    mine, other = f"clk-{unique}", f"clh-{unique}"
    _dataset(admin, mine, "people")
    _dataset(admin, other, "hidden")
    fake.script(json_answer({"sql": CLEAN_SQL}))
    task = _clean(admin, mine, "people", "by_admin").json()
    _finished(admin, mine, "people", task["id"])
    reader = admin.post("/tokens", json={"name": f"r-{unique}", "role": "member", "restrictions": {
        "grants": [{"namespace": mine, "access": "read"}]}}).json()["key"]
    with llm_server.client(reader) as c:
        # A dataset out of sight is 404; reading the source is not writing the output.
        r = _clean(c, other, "hidden", "out", out_ns=mine)
        assert r.status_code == 404 and error_code(r) in ("namespace_not_found", "dataset_not_found"), r.text
        r = _clean(c, mine, "people", "out")
        assert r.status_code == 403, r.text
        # The admin's task is visible to a key that reads its source, not to one that cannot.
        assert c.get(f"/namespaces/{mine}/datasets/people/cleaning/{task['id']}").status_code == 200
    blind = admin.post("/tokens", json={"name": f"b-{unique}", "role": "member", "restrictions": {
        "grants": [{"namespace": other, "access": "write"}]}}).json()["key"]
    with llm_server.client(blind) as c:
        r = c.get(f"/namespaces/{mine}/datasets/people/cleaning/{task['id']}")
        assert r.status_code == 404, r.text
    assert fake.requests and len(fake.requests) == 1
    _absent(admin, mine, "out")


def test_a_task_whose_worker_vanished_is_failed(llm_server, admin, provider, unique):
    """A crash mid-task: its lease runs out and the upkeep sweep records what happened."""
    ns = f"cll-{unique}"
    _dataset(admin, ns, "people")
    source = admin.get(f"/namespaces/{ns}/datasets/people").json()
    url = normalise_database_url(llm_server.database_url) if llm_server.database_url else \
        f"sqlite:///{Path(llm_server.data_dir) / 'runyard.db'}"
    task_id = new_id("cln")
    engine = sa.create_engine(url)
    past = datetime.now(UTC) - timedelta(minutes=5)
    try:
        with engine.begin() as conn:
            ws = conn.execute(sa.text("SELECT workspace_id FROM datasets WHERE id = :i"), {"i": source["id"]}).scalar()
            conn.execute(sa.text(
                "INSERT INTO cleaning_tasks (id, workspace_id, source_dataset_id, source_namespace, source_dataset, "
                "output_namespace, output_dataset, prompts, status, usage, worker_id, lease_expires_at, created_at, "
                "started_at) VALUES (:id, :ws, :ds, :ns, 'people', :ns, 'out', :prompts, 'running', :usage, "
                "'wrk_gone', :past, :past, :past)"),
                {"id": task_id, "ws": ws, "ds": source["id"], "ns": ns, "prompts": '["x"]', "usage": "{}",
                 "past": past})
    finally:
        engine.dispose()
    done = _finished(admin, ns, "people", task_id)
    assert done["status"] == "failed" and done["error"]["code"] == "worker_lost", done
    assert done["finished_at"] is not None
    _absent(admin, ns, "out")


# -- without a provider (the shared server: no provider, no RUNYARD_LLM_*) -------------------------
def test_without_a_provider(api, unique):
    ns = f"cln0-{unique}"
    _dataset(api, ns, "people")
    r = _clean(api, ns, "people", "out")
    assert r.status_code == 409 and error_code(r) == "llm_not_configured", r.text
    assert "/llm/providers" in r.json()["error"]["message"]
    _absent(api, ns, "out")

"""POST /ask (SSE: plan, step…, answer | error) and POST /autorag (one JSON answer): the
model queries through a run_sql tool, under the caller's grants, through the read-only
guard; failures end cleanly."""

from __future__ import annotations

import json

import httpx

from tests.support.api import error_code
from tests.support.fake_llm import answer, status, tool_call

ROWS = [{"city": "Oslo", "amount": 3}, {"city": "Rome", "amount": 4}, {"city": "Lima", "amount": 5}]


def _dataset(api: httpx.Client, ns: str, ds: str = "sales", rows: list[dict] = ROWS) -> None:
    api.post("/namespaces", json={"name": ns})
    assert api.post(f"/namespaces/{ns}/datasets/{ds}/rows", params={"create": True}, json=rows).status_code in (200, 201)


def _events(response: httpx.Response) -> list[tuple[str, dict]]:
    out = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_autorag_answers_from_the_queries_it_ran(admin, provider, fake, unique):
    ns = f"rag-{unique}"
    _dataset(admin, ns)
    sql = f'SELECT sum(amount) AS total FROM "{ns}"."sales"'
    fake.script(tool_call("run_sql", {"sql": sql}), answer("12 units were sold in all."))
    r = admin.post("/autorag", json={"query": "How much was sold?", "namespace": ns, "helper_prompt": "Be brief."})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == "12 units were sold in all."
    assert body["steps"] == [{"index": 1, "sql": sql, "columns": ["total"], "rows": [{"total": 12}], "row_count": 1,
                              "truncated": False, "error": None}]
    assert len(body["trace"]) == 2
    first, second = fake.requests
    assert "Be brief." in first.prompt and f'"{ns}"."sales"' in first.prompt
    assert first.body["tools"][0]["function"]["name"] == "run_sql"
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["rows"] == [{"total": 12}]


def test_ask_streams_plan_steps_answer(admin, provider, fake, unique):
    ns = f"ask-{unique}"
    _dataset(admin, ns)
    fake.script(tool_call("run_sql", {"sql": f'DELETE FROM "{ns}"."sales"'}),
                tool_call("run_sql", {"sql": f'SELECT count(*) AS n FROM "{ns}"."sales"'}),
                answer("There are 3 sales."))
    r = admin.post("/ask", json={"query": "How many sales?", "namespace": ns})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    events = _events(r)
    assert [e for e, _ in events] == ["plan", "step", "step", "answer"]
    assert events[0][1]["datasets"] == [f"{ns}.sales"]
    assert events[1][1]["error"]["code"] == "read_only_sql"  # refused, given back to the model, nothing ran
    assert events[2][1]["rows"] == [{"n": 3}]
    assert events[3][1]["answer"] == "There are 3 sales."
    assert admin.post("/query", json={"query": f'SELECT count(*) AS n FROM "{ns}"."sales"'}).json()["rows"] == [{"n": 3}]


def test_ask_failures_end_cleanly(admin, provider, fake, unique):
    ns = f"askf-{unique}"
    _dataset(admin, ns)
    fake.script(status(500), status(500))
    events = _events(admin.post("/ask", json={"query": "?", "namespace": ns}))
    assert [e for e, _ in events] == ["plan", "error"] and events[1][1]["code"] == "llm_error"
    fake.script(tool_call("run_sql", {"sql": f'SELECT 1 AS one FROM "{ns}"."sales" LIMIT 1'}),
                tool_call("run_sql", {"sql": "SELECT 2"}))
    r = admin.post("/autorag", json={"query": "?", "namespace": ns, "max_steps": 1})
    assert r.status_code == 502 and error_code(r) == "llm_too_many_steps", r.text
    fake.script(answer(""))
    r = admin.post("/autorag", json={"query": "?", "namespace": ns})
    assert r.status_code == 502 and error_code(r) == "llm_invalid_response", r.text
    r = admin.post("/ask", json={"query": "?", "namespace": f"nope-{unique}"})
    assert r.status_code == 404, r.text


def test_ask_sees_only_readable_datasets(llm_server, admin, provider, fake, unique):
    mine, other = f"askm-{unique}", f"asko-{unique}"
    _dataset(admin, mine)
    _dataset(admin, other, "secret_payroll", [{"salary_col_x": 1}])
    key = admin.post("/tokens", json={"name": f"a-{unique}", "role": "viewer", "restrictions": {
        "grants": [{"namespace": mine, "access": "read"}]}}).json()["key"]
    with llm_server.client(key) as g:
        fake.script(tool_call("run_sql", {"sql": f'SELECT * FROM "{other}"."secret_payroll"'}), answer("I cannot."))
        events = _events(g.post("/ask", json={"query": "salaries?"}))
        assert events[0][1]["datasets"] == [f"{mine}.sales"]
        assert events[1][1]["error"]["code"] == "dataset_access_denied" and "rows" not in events[1][1]
        # The schemas shown hold only its namespace; the refusal given back names only what the
        # model itself wrote, worded the same whether the dataset exists or not.
        assert other not in fake.requests[0].prompt
        assert "does not exist or this key cannot read it" in fake.requests[1].prompt
        assert all("salary_col_x" not in json.dumps(r.body) for r in fake.requests)


def test_ask_without_a_provider(api, unique):
    for path in ("/ask", "/autorag"):
        r = api.post(path, json={"query": "anything?"})
        assert r.status_code == 409 and error_code(r) == "llm_not_configured", r.text

"""The ingest proxy (POST /ingest-proxy/runs): auto-modelling pipeline runs against a real
server, the model being the scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.fake_llm import FakeLLM, json_answer, slow, status
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

PEOPLE = [{"Full Name": "Ada", "age": "36", "city": "London"}, {"Full Name": "Alan", "age": "41", "city": "Wilmslow"},
          {"Full Name": "Grace", "age": "85", "city": "Arlington"}]
GOOD = {"dataset_name": "people", "data_description": "People and where they lived.", "questions": [],
        "fields": [{"name": "full_name", "type": "string", "description": "the person's name", "source": "Full Name"},
                   {"name": "age", "type": "int", "description": "age in years", "source": "age"},
                   {"name": "city", "type": "string", "description": "the city", "source": "city"}]}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def read_events(client: httpx.Client, run_id: str, start: int = 0, *, until_hook: bool = False,
                timeout: float = 60) -> list[dict[str, Any]]:
    """The run's NDJSON events from ``start`` until ``complete``/``error`` (or a ``hook``)."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", f"/ingest-proxy/runs/{run_id}/stream", params={"start_index": start},
                       timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            events.append(event)
            if event["type"] in ("complete", "error") or (until_hook and event["type"] == "hook"):
                break
    return events


def start(client: httpx.Client, **body: Any) -> dict[str, Any]:
    made = client.post("/ingest-proxy/runs", json=body)
    assert made.status_code == 201, made.text
    return made.json()


def member(server: Server) -> tuple[str, str]:
    username = unique("u")
    with server.client() as admin:
        assert admin.post("/users", json={"username": username, "role": "member"}).status_code == 201
        made = admin.post("/tokens", json={"name": "proxy", "role": "member", "user": username})
        assert made.status_code == 201, made.text
    return username, made.json()["key"]


def datasets_of(client: httpx.Client, ns: str) -> list[str]:
    listed = client.get(f"/namespaces/{ns}/datasets")
    if listed.status_code == 404:
        return []
    return [d["name"] for d in listed.json()["items"]]


@pytest.fixture
def ns() -> str:
    return unique("proxy")


def test_a_model_proposed_schema_is_evaluated_retried_and_ingested(admin: httpx.Client, provider: dict,
                                                                     fake: FakeLLM, ns: str) -> None:
    wrong = {**GOOD, "fields": [{**GOOD["fields"][0], "type": "int"}, *GOOD["fields"][1:]]}
    fake.script(json_answer(wrong), json_answer(GOOD))
    run = start(admin, namespace=ns, data=PEOPLE, user_prompt="who lived where", ontology=False,
                max_eval_retries=2, explosion_helper_prompt="one person per row")
    assert run["status"] == "running" and run["object"] == "ingest_proxy_run"
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "complete", events
    assert [e["index"] for e in events] == list(range(len(events)))
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases == ["fetch", "model", "ingest"]
    retry = next(e for e in events if e["type"] == "progress" and (e["data"] or {}).get("errors"))
    assert "sample row 0" in retry["message"]
    # the second call was shown the evaluation's errors; the first the goals and the helper
    first, second = fake.requests
    assert "who lived where" in first.prompt and "one person per row" in first.prompt and '"Full Name"' in first.prompt
    assert "failed evaluation" in second.prompt and "full_name" in second.prompt
    out = events[-1]["data"]
    assert out["dataset"] == "people" and out["ingested"] == 3 and out["schema_source"] == "model"
    ds = admin.get(f"/namespaces/{ns}/datasets/people").json()
    assert [(c["name"], c["type"]) for c in ds["columns"]][:3] == [("full_name", "string"), ("age", "int"),
                                                                    ("city", "string")]
    assert ds["description"] == "People and where they lived."
    assert ds["field_definitions"]["age"] == "age in years"
    rows = admin.post("/query", json={"query": f'SELECT full_name, age FROM "{ns}"."people" ORDER BY age'})
    assert rows.status_code == 200, rows.text
    assert "Grace" in rows.text
    # a runyard run: listed, with logs, succeeded
    listed = admin.get("/runs", params={"type": "ingest_proxy", "limit": 5}).json()["items"]
    assert run["id"] in [r["id"] for r in listed]
    got = admin.get(f"/runs/{run['id']}").json()
    assert got["status"] == "succeeded" and got["type"] == "ingest_proxy"
    logs = admin.get(f"/runs/{run['id']}/logs").text
    assert "[model]" in logs and "[ingest] ingested 3 rows" in logs
    trace = admin.get(f"/ingest-proxy/runs/{run['id']}/trace").json()
    assert len(trace["model_calls"]) == 2 and trace["tokens"]["total_tokens"] == 36
    assert trace["model_calls"][1]["response"] == json.dumps(GOOD)
    assert [s["phase"] for s in trace["steps"]] == ["fetch", "model", "ingest"]
    assert "llm_tokens" in admin.get("/usage/daily").text  # the calls' tokens metered
    # a reconnect from an index replays from there
    tail = read_events(admin, run["id"], start=len(events) - 2)
    assert [e["index"] for e in tail] == [len(events) - 2, len(events) - 1]


def test_a_schema_that_never_fits_fails_the_run_and_ingests_nothing(admin: httpx.Client, provider: dict,
                                                                      fake: FakeLLM, ns: str) -> None:
    wrong = {**GOOD, "fields": [{**GOOD["fields"][0], "type": "int"}]}
    fake.script(json_answer(wrong), json_answer(wrong))
    run = start(admin, namespace=ns, data=PEOPLE, max_eval_retries=1)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "error" and events[-1]["data"]["code"] == "schema_evaluation_failed"
    assert admin.get(f"/runs/{run['id']}").json()["status"] == "failed"
    assert admin.get(f"/namespaces/{ns}/datasets/people").status_code == 404


def test_a_model_failure_fails_the_run_cleanly(admin: httpx.Client, provider: dict, fake: FakeLLM, ns: str) -> None:
    fake.script(status(500), status(500))
    run = start(admin, namespace=ns, data=PEOPLE)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "error"
    assert events[-1]["data"]["code"].startswith("llm_")
    got = admin.get(f"/runs/{run['id']}").json()
    assert got["status"] == "failed" and got["error"]["type"] == events[-1]["data"]["code"]
    assert datasets_of(admin, ns) == []


def test_a_predefined_schema_skips_the_model_and_curates(admin: httpx.Client, provider: dict, fake: FakeLLM,
                                                         ns: str) -> None:
    fake.script()
    schema = {"fields": [{"name": "name", "source": "Full Name", "type": "string"},
                         {"name": "age", "type": "int"}], "data_description": "people"}
    run = start(admin, namespace=ns, dataset="folks", data=PEOPLE, predefined_schema=schema)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "complete", events
    assert fake.requests == []
    out = events[-1]["data"]
    assert out["schema_source"] == "predefined" and out["dataset"] == "folks" and out["ingested"] == 3
    assert out["curation"]["status"] == "succeeded"
    assert [e["phase"] for e in events if e["type"] == "phase"] == ["fetch", "model", "ingest", "ontology"]


def test_without_the_model_phase_the_schema_is_inferred_and_labelled(admin: httpx.Client, ns: str) -> None:
    run = start(admin, namespace=ns, data=PEOPLE, model=False, ingest=False)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "complete"
    out = events[-1]["data"]
    assert out["schema_source"] == "inferred_without_model" and out["ingested"] is None
    assert {f["name"]: f["type"] for f in out["schema"]["fields"]}["age"] == "int"


def test_review_and_clarification_hooks_wait_for_input(admin: httpx.Client, provider: dict, fake: FakeLLM,
                                                        ns: str) -> None:
    asking = {**GOOD, "questions": ["Is age in years or months?"]}
    fake.script(json_answer(asking), json_answer(GOOD))
    run = start(admin, namespace=ns, data=PEOPLE, enable_human_in_the_loop=True, ontology=False)
    events = read_events(admin, run["id"], until_hook=True)
    hook = events[-1]["data"]["hook"]
    assert hook["kind"] == "clarification" and hook["questions"] == ["Is age in years or months?"]
    got = admin.get(f"/runs/{run['id']}").json()
    assert got["status"] == "waiting_for_input"
    wrong = admin.post(f"/ingest-proxy/runs/{run['id']}/hook", json={"kind": "schema_review", "approved": True})
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "hook_not_waiting"
    answered = admin.post(f"/ingest-proxy/runs/{run['id']}/hook",
                          json={"kind": "clarification", "hook_id": hook["id"], "answer": "years"})
    assert answered.status_code == 200, answered.text
    events += read_events(admin, run["id"], len(events), until_hook=True)
    review = events[-1]["data"]["hook"]
    assert review["kind"] == "schema_review" and review["sample_rows"][0]["full_name"] == "Ada"
    assert "They answered: years" in fake.requests[1].prompt
    bad = admin.post(f"/ingest-proxy/runs/{run['id']}/hook",
                     json={"kind": "schema_review", "schema": {"fields": [{"name": "age", "type": "bool"}]}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_schema"
    edited = {"fields": [{"name": "who", "type": "string", "source": "Full Name"}, {"name": "age", "type": "float"}]}
    ok = admin.post(f"/ingest-proxy/runs/{run['id']}/hook", json={"kind": "schema_review", "schema": edited})
    assert ok.status_code == 200, ok.text
    events += read_events(admin, run["id"], len(events))
    assert events[-1]["type"] == "complete", events
    assert events[-1]["data"]["schema_source"] == "reviewer"
    ds = admin.get(f"/namespaces/{ns}/datasets/people").json()
    assert [(c["name"], c["type"]) for c in ds["columns"]][:2] == [("who", "string"), ("age", "float")]
    again = admin.post(f"/ingest-proxy/runs/{run['id']}/hook", json={"kind": "schema_review", "approved": True})
    assert again.status_code == 409


def test_a_rejected_review_fails_the_run(admin: httpx.Client, ns: str) -> None:
    run = start(admin, namespace=ns, data=PEOPLE, model=False, enable_human_in_the_loop=True)
    events = read_events(admin, run["id"], until_hook=True)
    assert events[-1]["data"]["hook"]["kind"] == "schema_review"
    assert admin.post(f"/ingest-proxy/runs/{run['id']}/hook",
                      json={"kind": "schema_review", "approved": False}).status_code == 200
    events += read_events(admin, run["id"], len(events))
    assert events[-1]["type"] == "error" and events[-1]["data"]["code"] == "schema_rejected"
    assert datasets_of(admin, ns) == []


def test_a_run_cancelled_while_it_waits_or_calls_the_model_stops(admin: httpx.Client, provider: dict,
                                                                  fake: FakeLLM, ns: str) -> None:
    run = start(admin, namespace=ns, data=PEOPLE, model=False, enable_human_in_the_loop=True)
    read_events(admin, run["id"], until_hook=True)
    assert admin.post(f"/runs/{run['id']}/cancel").json()["status"] == "cancelled"
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "error" and events[-1]["data"]["code"] == "cancelled"
    # mid-call: the cancel is seen once the call returns, before anything is ingested
    fake.script(slow(1.0, json_answer(GOOD)))
    run = start(admin, namespace=ns, dataset="later", data=PEOPLE)
    deadline = time.monotonic() + 10
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admin.post(f"/runs/{run['id']}/cancel").status_code == 200
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "error" and events[-1]["data"]["code"] == "cancelled"
    assert admin.get(f"/runs/{run['id']}").json()["status"] == "cancelled"
    assert admin.get(f"/namespaces/{ns}/datasets/later").status_code == 404


@pytest.fixture
def data_server() -> Iterator[str]:
    """A loopback HTTP server answering /people.json (the test server allows 127.0.0.1)."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/people.json":
                body, code = json.dumps(PEOPLE).encode(), 200
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            else:
                body, code = b"{}", 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_data_is_fetched_from_a_url_under_the_outbound_policy(admin: httpx.Client, ns: str, data_server: str) -> None:
    run = start(admin, namespace=ns, data_url=f"{data_server}/people.json", model=False, ontology=False)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "complete", events
    assert events[-1]["data"]["ingested"] == 3
    # a redirect to a metadata address is refused at the hop, nothing fetched there
    run = start(admin, namespace=ns, data_url=f"{data_server}/redirect", model=False)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "error" and events[-1]["data"]["code"] == "outbound_host_refused"
    run = start(admin, namespace=ns, data_url=f"{data_server}/missing.json", model=False)
    assert read_events(admin, run["id"])[-1]["data"]["code"] == "data_fetch_failed"


def test_rows_are_read_from_a_workspace_file(admin: httpx.Client, ns: str) -> None:
    name = f"{ns}.csv"
    uploaded = admin.post("/workspace/files", data={"name": name},
                          files={"file": (name, b"Full Name,age\nAda,36\nAlan,41\n", "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    run = start(admin, namespace=ns, workspace_file=name, model=False, ontology=False)
    events = read_events(admin, run["id"])
    assert events[-1]["type"] == "complete", events
    assert events[-1]["data"]["ingested"] == 2
    assert any("workspace file" in e["message"] for e in events)
    missing = admin.post("/ingest-proxy/runs", json={"namespace": ns, "workspace_file": "nope.csv"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"


@pytest.mark.parametrize(("body", "status_code", "code"), [
    ({}, 400, "invalid_data_source"),
    ({"data": PEOPLE, "data_url": "https://example.com/x.json"}, 400, "invalid_data_source"),
    ({"data": PEOPLE, "workspace_file": "rows.csv"}, 400, "invalid_data_source"),
    ({"data_url": "http://169.254.169.254/latest/meta-data"}, 400, "outbound_host_refused"),
    ({"data_url": "http://10.1.2.3/rows.json"}, 400, "outbound_host_refused"),
    ({"data_url": "file:///etc/passwd"}, 400, "invalid_url"),
    ({"data": [1, 2]}, 400, "invalid_rows"),
    ({"data": [{}] * 100_001}, 413, "payload_too_large"),
    ({"data": PEOPLE, "predefined_schema": {"fields": [{"name": "_id", "type": "int"}]}}, 400, "invalid_schema"),
    ({"data": PEOPLE, "max_eval_retries": 99}, 400, "validation_error"),
])
def test_bad_requests_are_refused_and_start_nothing(admin: httpx.Client, ns: str, body: dict, status_code: int,
                                                    code: str) -> None:
    before = admin.get("/runs", params={"type": "ingest_proxy", "limit": 1}).json()["items"]
    made = admin.post("/ingest-proxy/runs", json={"namespace": ns, **body})
    assert made.status_code == status_code, made.text
    assert made.json()["error"]["code"] == code
    after = admin.get("/runs", params={"type": "ingest_proxy", "limit": 1}).json()["items"]
    assert after == before


def test_another_users_run_is_not_found(llm_server: Server, admin: httpx.Client, ns: str) -> None:
    run = start(admin, namespace=ns, data=PEOPLE, model=False, enable_human_in_the_loop=True)
    read_events(admin, run["id"], until_hook=True)
    _, key = member(llm_server)
    with llm_server.client(key) as other:
        for response in (other.get(f"/ingest-proxy/runs/{run['id']}"),
                         other.get(f"/ingest-proxy/runs/{run['id']}/trace"),
                         other.get(f"/ingest-proxy/runs/{run['id']}/stream"),
                         other.post(f"/ingest-proxy/runs/{run['id']}/hook",
                                    json={"kind": "schema_review", "approved": True})):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "run_not_found"
    assert admin.get(f"/runs/{run['id']}").json()["status"] == "waiting_for_input"
    admin.post(f"/runs/{run['id']}/cancel")


def test_a_viewer_cannot_start_a_run(llm_server: Server, ns: str) -> None:
    with llm_server.client() as admin:
        username = unique("v")
        assert admin.post("/users", json={"username": username, "role": "viewer"}).status_code == 201
        key = admin.post("/tokens", json={"name": "v", "role": "viewer", "user": username}).json()["key"]
    with llm_server.client(key) as viewer:
        made = viewer.post("/ingest-proxy/runs", json={"namespace": ns, "data": PEOPLE})
        assert made.status_code == 403 and made.json()["error"]["code"] == "insufficient_role"


def test_a_key_restricted_to_other_data_cannot_ingest_through_a_run(llm_server: Server, admin: httpx.Client,
                                                                    ns: str) -> None:
    """The run acts under the starting key's grants: a key reading one namespace cannot make
    the run write another."""
    readable = unique("ro")
    assert admin.post("/namespaces", json={"name": readable}).status_code == 201
    assert admin.post("/namespaces", json={"name": ns}).status_code == 201
    made = admin.post("/tokens", json={"name": "ro", "role": "member",
                                       "restrictions": {"grants": [{"namespace": readable, "access": "read"}]}})
    assert made.status_code == 201, made.text
    with llm_server.client(made.json()["key"]) as limited:
        run = start(limited, namespace=ns, data=PEOPLE, model=False)
        events = read_events(limited, run["id"])
    assert events[-1]["type"] == "error", events
    assert datasets_of(admin, ns) == []


def test_an_expired_key_makes_the_run_wait_for_a_fresh_one(llm_server: Server, admin: httpx.Client,
                                                          ns: str) -> None:
    username, key = member(llm_server)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    short = admin.post("/tokens", json={"name": "short", "role": "member", "user": username, "expires_at": expires})
    assert short.status_code == 201, short.text
    with llm_server.client(short.json()["key"]) as client:
        run = start(client, namespace=ns, data=PEOPLE, model=False, enable_human_in_the_loop=True, ontology=False)
        events = read_events(client, run["id"], until_hook=True)
    time.sleep(3.5)  # the key expires while the run waits for its review
    with llm_server.client(key) as client:
        assert client.post(f"/ingest-proxy/runs/{run['id']}/hook",
                           json={"kind": "schema_review", "approved": True}).status_code == 200
        events += read_events(client, run["id"], len(events), until_hook=True)
        hook = events[-1]["data"]["hook"]
        assert hook["kind"] == "token_refresh"
        mismatch = client.post(f"/ingest-proxy/runs/{run['id']}/hook",
                               json={"kind": "token_refresh", "token": llm_server.admin_key})
        assert mismatch.status_code == 403 and mismatch.json()["error"]["code"] == "token_user_mismatch"
        bad = client.post(f"/ingest-proxy/runs/{run['id']}/hook", json={"kind": "token_refresh", "token": "nope"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_refresh_token"
        ok = client.post(f"/ingest-proxy/runs/{run['id']}/hook", json={"kind": "token_refresh", "token": key})
        assert ok.status_code == 200, ok.text
        events += read_events(client, run["id"], len(events))
    assert events[-1]["type"] == "complete", events
    assert events[-1]["data"]["ingested"] == 3


def test_a_run_whose_node_dies_mid_phase_resumes_after_its_last_completed_phase(
        backend: str, tmp_path, fake: FakeLLM) -> None:
    """SIGKILL while the model call is out: a new node takes the run over once its lease
    expires and resumes at the model phase (the fetch is not done again); the rows land once."""
    from tests.support.servers import PgDatabase

    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path / "data", database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_OUTBOUND_ALLOW": "127.0.0.1", "RUNYARD_LEASE_S": "2"})
    try:
        srv.start()
        with srv.client(timeout=60) as admin:
            assert admin.post("/llm/providers", json={"name": "scripted", "base_url": fake.base_url,
                                                      "default_model": "fake-model", "timeout_s": 20,
                                                      "max_retries": 0}).status_code == 201
            fake.script(slow(5.0, json_answer(GOOD)), json_answer(GOOD))
            run = start(admin, namespace="crash", data=PEOPLE, ontology=False)
            deadline = time.monotonic() + 20
            while not fake.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fake.requests, "the model was never called"
        srv.kill9()
        srv.start()
        with srv.client(timeout=60) as admin:
            events = read_events(admin, run["id"])
            assert events[-1]["type"] == "complete", events
            assert any(e["type"] == "log" and "resumed" in e["message"] for e in events)
            assert [e["phase"] for e in events if e["type"] == "phase"].count("fetch") == 1
            assert len(fake.requests) == 2
            assert admin.get("/namespaces/crash/datasets/people").json()["rows"] == 3
            assert admin.get(f"/runs/{run['id']}").json()["status"] == "succeeded"
    finally:
        srv.stop()
        if pg:
            pg.drop()

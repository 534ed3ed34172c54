"""DataMaker's REST paths served by runyard (api/compat/datamaker.py): the reference's
curl-shaped requests, sent with httpx (and one with curl itself) against a real server on
loopback, and the small Python client's sections over them."""

from __future__ import annotations

import csv as csv_module
import io
import json
import shutil
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openpyxl
import pytest

from runyard.compat.datamaker import DataMaker, DataMakerError
from tests.support.servers import PgDatabase, Server

pytestmark = pytest.mark.timeout(300)

PREFIX = "/compat/datamaker"
STARTUP_S = 180  # a server of this module's own migrates a fresh database: slow on a busy host
TEMPLATE = {"name": "customers", "fields": [
    {"name": "id", "generator": "sequence", "start": 1},
    {"name": "country", "generator": "choice", "values": ["FR", "US"]},
    {"name": "amount", "generator": "int", "min": 1, "max": 100},
]}
LOADER = '''
def main(environment: str, size: int = 1):
    print(f"loading {size} rows into {environment}", flush=True)
    return {"environment": environment, "rows": size * 2}
'''
SLEEPER = '''
import time

def main(seconds: float = 60):
    print("sleeping", flush=True)
    time.sleep(seconds)
'''
OPENAPI_DOC = {"openapi": "3.0.0", "info": {"title": "orders", "version": "1"}, "paths": {
    "/orders": {"get": {"operationId": "listOrders", "summary": "List orders", "responses": {"200": {
        "description": "ok"}}}}}}


class _OpenApiHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps(OPENAPI_DOC).encode() if self.path.endswith("openapi.json") else b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def openapi_url() -> Iterator[str]:
    """A real HTTP service on loopback serving an OpenAPI document (a connection's target)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OpenApiHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@pytest.fixture(scope="module")
def dm_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: loopback allow-listed for the connection tests."""
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"dm-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_ALLOWED_HOSTS": "127.0.0.1"})
    srv.start(wait_ready=False).wait_ready(timeout=STARTUP_S)
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture
def dm(dm_server: Server) -> Iterator[httpx.Client]:
    """An httpx client shaped as the reference's curl examples: base URL + bearer key."""
    with httpx.Client(base_url=f"{dm_server.base_url}{PREFIX}", timeout=60,
                      headers={"Authorization": f"Bearer {dm_server.admin_key}"}) as client:
        yield client


def _key(dm_server: Server, role: str, **restrictions: object) -> str:
    body: dict[str, object] = {"name": f"dm-{role}-{uuid.uuid4().hex[:6]}", "role": role}
    if restrictions:
        body["restrictions"] = restrictions
    with dm_server.client() as api:
        response = api.post("/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


class _Http:
    """One-off requests (no client's headers) with a timeout that suits a busy host."""

    def request(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def get(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", url, **kwargs)


_http = _Http()


def _user_key(dm_server: Server, role: str) -> str:
    """A key of a user of its own (keys the operator makes for itself are the operator's, never counted)."""
    username = f"dm-{role}-{uuid.uuid4().hex[:6]}"
    with dm_server.client() as api:
        assert api.post("/users", json={"username": username, "role": role}).status_code == 201
        made = api.post("/tokens", json={"name": username, "role": role, "user": username})
    assert made.status_code == 201, made.text
    return made.json()["key"]


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"])
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- templates ---------------------------------------------------------------------------------
def test_templates_crud_versions_and_versioned_reads(dm: httpx.Client) -> None:
    name = _unique("customers")
    created = dm.post("/templates", json={**TEMPLATE, "name": name})
    assert created.status_code == 201, created.text
    tpl = created.json()
    assert tpl["id"].startswith("tpl_") and tpl["version"] == 1

    listed = dm.get("/templates", params={"limit": 1000})
    assert listed.status_code == 200 and set(listed.json()) == {"items", "next_cursor", "total"}
    assert tpl["id"] in [t["id"] for t in listed.json()["items"]] and listed.json()["total"] >= 1

    patched = dm.patch(f"/templates/{tpl['id']}", json={"description": "v2 of the customers"})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert dm.get(f"/templates/{tpl['id']}").json()["version"] == 2
    v1 = dm.get(f"/templates/{tpl['id']}@v1")
    assert v1.status_code == 200 and v1.json()["version"] == 1 and v1.json().get("description") is None
    assert dm.get(f"/templates/{tpl['id']}@v2").json()["description"] == "v2 of the customers"
    missing = dm.get(f"/templates/{tpl['id']}@v9")
    assert missing.status_code == 404 and _error(missing)["code"] == "template_version_not_found"

    versions = dm.get(f"/templates/{tpl['id']}/versions").json()
    assert set(versions) == {"items", "next_cursor", "total"}
    assert sorted(v["version"] for v in versions["items"]) == [1, 2]

    assert dm.delete(f"/templates/{tpl['id']}").status_code == 204
    gone = dm.get(f"/templates/{tpl['id']}")
    assert gone.status_code == 404 and _error(gone)["code"] == "template_not_found"


def test_generate_streams_each_format_with_seed_and_overrides(dm: httpx.Client) -> None:
    tpl = dm.post("/templates", json={**TEMPLATE, "name": _unique("gen")}).json()
    body = {"count": 100, "format": "json", "seed": "nightly", "overrides": {"country": "DE"}}
    first = dm.post(f"/templates/{tpl['id']}/generate", json=body)
    assert first.status_code == 200, first.text
    rows = first.json()
    assert len(rows) == 100 and {r["country"] for r in rows} == {"DE"}
    assert dm.post(f"/templates/{tpl['id']}/generate", json=body).content == first.content  # same seed, same bytes
    other = dm.post(f"/templates/{tpl['id']}/generate", json={**body, "seed": "another"})
    assert other.content != first.content

    csv = dm.post(f"/templates/{tpl['id']}/generate", json={**body, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = list(csv_module.reader(io.StringIO(csv.text)))
    assert lines[0] == ["id", "country", "amount"] and len(lines) == 101
    # No format in the body: "Accept: text/csv" chooses it, as the reference says.
    accepted = dm.post(f"/templates/{tpl['id']}/generate", json={"count": 5, "seed": "s"},
                       headers={"Accept": "text/csv"})
    assert accepted.headers["content-type"].startswith("text/csv") and len(accepted.text.strip().splitlines()) == 6

    sql = dm.post(f"/templates/{tpl['id']}/generate", json={**body, "count": 3, "format": "sql"})
    assert sql.status_code == 200 and sql.text.count("INSERT INTO") >= 1 and "'DE'" in sql.text

    xlsx = dm.post(f"/templates/{tpl['id']}/generate", json={**body, "count": 4, "format": "xlsx"})
    assert xlsx.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert [c.value for c in next(sheet.iter_rows(max_row=1))] == ["id", "country", "amount"]
    assert sheet.max_row == 5

    preview = dm.post(f"/templates/{tpl['id']}/preview", json={"seed": "nightly"})
    assert preview.status_code == 200 and len(preview.json()["rows"]) == 3


def test_generate_refusals_change_nothing(dm: httpx.Client) -> None:
    tpl = dm.post("/templates", json={**TEMPLATE, "name": _unique("bad")}).json()
    bad_format = dm.post(f"/templates/{tpl['id']}/generate", json={"count": 5, "format": "pdf"})
    assert bad_format.status_code == 400 and _error(bad_format)["code"] == "invalid_format"
    bad_override = dm.post(f"/templates/{tpl['id']}/generate", json={"count": 5, "overrides": ["x"]})
    assert bad_override.status_code == 400 and _error(bad_override)["details"]["field"] == "overrides"
    unknown = dm.post("/templates/tpl_doesnotexist/generate", json={"count": 5})
    assert unknown.status_code == 404 and _error(unknown)["code"] == "template_not_found"
    assert dm.get(f"/templates/{tpl['id']}").json()["version"] == 1


# -- scenarios ---------------------------------------------------------------------------------
def _scenario(dm: httpx.Client, code: str = LOADER, prefix: str = "load") -> dict:
    created = dm.post("/scenarios", json={"name": _unique(prefix), "code": textwrap.dedent(code)})
    assert created.status_code == 201, created.text
    return created.json()


def test_scenario_run_wait_true_and_false(dm: httpx.Client) -> None:
    scn = _scenario(dm)
    assert scn["id"].startswith("tool_") and scn["params"] == ["environment", "size"]
    listed = dm.get("/scenarios", params={"search": scn["name"]}).json()
    assert [s["id"] for s in listed["items"]] == [scn["id"]] and listed["total"] == 1

    # The reference's example body, strings and all.
    waited = dm.post(f"/scenarios/{scn['id']}/run",
                     json={"params": {"environment": "regression", "size": "500"}, "wait": "true"})
    assert waited.status_code == 201, waited.text
    run = waited.json()
    assert run["status"] == "succeeded" and run["output"] == {"environment": "regression", "rows": 1000}
    assert run["params"] == {"environment": "regression", "size": 500} and run["scenario_id"] == scn["id"]

    started = dm.post(f"/scenarios/{scn['id']}/run",
                      json={"params": {"environment": "staging", "size": "4"}, "wait": "false"})
    assert started.status_code == 201 and started.json()["id"].startswith("run_")
    run_id = started.json()["id"]
    # Stream the logs with ?follow=true (SSE) until the run ends.
    with dm.stream("GET", f"/scenarios/{scn['id']}/runs/{run_id}/logs", params={"follow": "true"}) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = sse.read().decode()
    assert "loading 4 rows into staging" in events and "event: end" in events
    detail = dm.get(f"/scenarios/{scn['id']}/runs/{run_id}").json()
    assert detail["status"] == "succeeded" and detail["output"] == {"environment": "staging", "rows": 8}
    text = dm.get(f"/scenarios/{scn['id']}/runs/{run_id}/logs")
    assert text.headers["content-type"].startswith("text/plain") and "loading 4 rows" in text.text

    runs = dm.get(f"/scenarios/{scn['id']}/runs", params={"limit": 1})
    assert runs.json()["total"] == 2 and runs.json()["next_cursor"]
    rest = dm.get(f"/scenarios/{scn['id']}/runs", params={"cursor": runs.json()["next_cursor"]}).json()
    assert [r["id"] for r in runs.json()["items"] + rest["items"]] == [run_id, run["id"]]


def test_replace_code_then_cancel_a_run(dm: httpx.Client) -> None:
    scn = _scenario(dm, SLEEPER, "sleepy")
    replaced = dm.put(f"/scenarios/{scn['id']}", json={"code": SLEEPER.replace("sleeping", "napping")})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    as_text = dm.put(f"/scenarios/{scn['id']}", content=SLEEPER.encode(), headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 200 and as_text.json()["version"] == 3

    run = dm.post(f"/scenarios/{scn['id']}/run", json={"params": {"seconds": "60"}}).json()
    deadline = time.monotonic() + 30
    while "sleeping" not in dm.get(f"/scenarios/{scn['id']}/runs/{run['id']}/logs").text:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cancelled = dm.delete(f"/scenarios/{scn['id']}/runs/{run['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["scenario_version"] == 3


def test_scenario_refusals(dm: httpx.Client) -> None:
    scn = _scenario(dm)
    other = _scenario(dm, prefix="other")
    taken = dm.post("/scenarios", json={"name": scn["name"], "code": LOADER})
    assert taken.status_code == 409 and _error(taken)["code"] == "scenario_exists"
    missing = dm.post("/scenarios/tool_nope/run", json={"params": {}})
    assert missing.status_code == 404 and _error(missing)["code"] == "scenario_not_found"
    assert _error(missing)["details"]["runyard_code"] == "tool_not_found"
    bad_wait = dm.post(f"/scenarios/{scn['id']}/run", json={"params": {"environment": "x"}, "wait": "maybe"})
    assert bad_wait.status_code == 400 and _error(bad_wait)["details"]["field"] == "wait"
    bad_params = dm.post(f"/scenarios/{scn['id']}/run", json={"params": {"size": "many", "environment": "x"}})
    assert bad_params.status_code == 400 and _error(bad_params)["code"] == "invalid_inputs"
    unknown_field = dm.post(f"/scenarios/{scn['id']}/run", json={"params": {}, "priority": 1})
    assert unknown_field.status_code == 400
    assert dm.get(f"/scenarios/{scn['id']}/runs").json()["total"] == 0  # nothing was started

    # Another scenario's run is not reachable through this scenario's path.
    run = dm.post(f"/scenarios/{other['id']}/run", json={"params": {"environment": "x"}, "wait": "true"}).json()
    for response in (dm.get(f"/scenarios/{scn['id']}/runs/{run['id']}"),
                     dm.get(f"/scenarios/{scn['id']}/runs/{run['id']}/logs"),
                     dm.delete(f"/scenarios/{scn['id']}/runs/{run['id']}")):
        assert response.status_code == 404 and _error(response)["code"] == "run_not_found"
    # Paths that try to climb out: never another resource.
    for path in (f"/scenarios/..%2F{scn['id']}/runs", f"/scenarios/{scn['id']}%2Fruns",
                 f"/templates/x%2F..%2F{scn['id']}", f"/sets/%2E%2E/{scn['id']}"):
        response = dm.get(path)  # 400 invalid_path, or 404 when the decoded path names no route
        assert response.status_code in (400, 404), path
        assert _error(response)["code"] in ("invalid_path", "not_found"), path
    assert _error(dm.get(f"/scenarios/{scn['id']}%2Fruns"))["code"] == "invalid_path"


# -- saved sets and workspace files ------------------------------------------------------------
def test_sets_save_versions_load_and_remove(dm: httpx.Client) -> None:
    name = _unique("people")
    first = dm.post("/sets", json={"name": name, "rows": [{"a": 1}, {"a": 2}]})
    assert first.status_code == 201 and first.json()["version"] == 1
    second = dm.post("/sets", json={"name": name, "rows": [{"a": 3}]})
    assert second.json()["version"] == 2
    assert dm.get(f"/sets/{name}").json()["rows"] == [{"a": 3}]
    assert dm.get(f"/sets/{name}", params={"version": 1}).json()["rows"] == [{"a": 1}, {"a": 2}]
    listed = dm.get("/sets", params={"limit": 1000}).json()
    assert set(listed) == {"items", "next_cursor", "total"} and name in [s["name"] for s in listed["items"]]
    assert dm.delete(f"/sets/{name}").status_code == 204
    assert dm.get(f"/sets/{name}").status_code == 404
    bad = dm.post("/sets", json={"name": name, "rows": "nope"})
    assert bad.status_code == 400 and dm.get(f"/sets/{name}").status_code == 404


def test_workspace_files_upload_list_download_remove(dm: httpx.Client) -> None:
    name = f"{_unique('seed')}.csv"
    data = b"id,name\n1,ada\n"
    uploaded = dm.post("/workspace/files", data={"name": name}, files={"file": ("x.csv", data, "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["name"] == name and uploaded.json()["size"] == len(data)
    listed = dm.get("/workspace/files", params={"prefix": name}).json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == name
    assert dm.get(f"/workspace/files/{name}").content == data
    assert dm.delete(f"/workspace/files/{name}").status_code == 204
    assert _error(dm.get(f"/workspace/files/{name}"))["code"] == "file_not_found"
    for path in ("/workspace/files/../../etc/passwd", "/workspace/files/..%2F..%2Fetc%2Fpasswd"):
        assert dm.get(path).status_code in (400, 404)


# -- connections -------------------------------------------------------------------------------
def test_connections_create_list_verify_metadata(dm: httpx.Client, openapi_url: str) -> None:
    name = _unique("orders-api").replace("-", "_")
    created = dm.post("/connections", json={"name": name, "type": "openapi",
                                            "config": {"base_url": openapi_url, "auth": {"type": "none"}}})
    assert created.status_code == 201, created.text
    conn = created.json()
    listed = dm.get("/connections", params={"type": "openapi"}).json()
    assert set(listed) == {"items", "next_cursor", "total"} and conn["id"] in [c["id"] for c in listed["items"]]
    verified = dm.post(f"/connections/{conn['id']}/verify")
    assert verified.status_code == 200 and verified.json()["status"]["state"] == "ok"
    metadata = dm.get(f"/connections/{conn['id']}/metadata")
    assert metadata.status_code == 200
    assert "listOrders" in json.dumps(metadata.json())
    bad = dm.post("/connections", json={"name": _unique("x"), "type": "sap"})
    assert bad.status_code == 400 and "error" in bad.json()


# -- who may do what ---------------------------------------------------------------------------
def test_keys_roles_and_restrictions(dm_server: Server, dm: httpx.Client, tmp_path: Path) -> None:
    base = f"{dm_server.base_url}{PREFIX}"
    scn = _scenario(dm)
    for headers in ({}, {"Authorization": "Bearer ry_not_a_key"}):
        response = _http.get(f"{base}/scenarios", headers=headers)
        assert response.status_code == 401 and _error(response)["code"] in ("missing_api_key", "invalid_api_key")
    refused = _http.post(f"{base}/scenarios/{scn['id']}/run", json={"params": {}})
    assert refused.status_code == 401  # a body is refused before it is read

    viewer = {"Authorization": f"Bearer {_key(dm_server, 'viewer')}"}
    assert _http.get(f"{base}/scenarios", headers=viewer).status_code == 200
    for method, path, body in (("POST", "/scenarios", {"name": _unique("v"), "code": LOADER}),
                               ("POST", f"/scenarios/{scn['id']}/run", {"params": {"environment": "x"}}),
                               ("POST", "/templates", {**TEMPLATE, "name": _unique("v")}),
                               ("POST", "/sets", {"name": _unique("v"), "rows": [{"a": 1}]}),
                               ("POST", "/connections", {"name": _unique("v"), "type": "http",
                                                         "config": {"base_url": "https://example.com"}})):
        response = _http.request(method, f"{base}{path}", json=body, headers=viewer)
        assert response.status_code == 403, (path, response.text)

    # A key restricted to another tool sees neither this scenario nor its runs.
    other = _scenario(dm, prefix="fenced")
    fenced = {"Authorization": f"Bearer {_key(dm_server, 'member', tools=[other['name']])}"}
    response = _http.post(f"{base}/scenarios/{scn['id']}/run", json={"params": {"environment": "x"}},
                          headers=fenced)
    assert response.status_code in (403, 404)
    assert _http.get(f"{base}/connections", headers=fenced).status_code == 403


def test_rate_limit_headers(dm_server: Server) -> None:
    # The operator's own keys are not counted: another user's key is.
    member = {"Authorization": f"Bearer {_user_key(dm_server, 'member')}"}
    with dm_server.client() as operator:
        assert operator.put("/workspace/plan", json={"plan": "custom", "requests_per_minute": 100000}).status_code == 200
    try:
        response = _http.get(f"{dm_server.base_url}{PREFIX}/templates", headers=member)
        assert response.status_code == 200
        assert int(response.headers["x-ratelimit-limit"]) == 100000
        assert int(response.headers["x-ratelimit-remaining"]) < 100000 and "x-ratelimit-reset" in response.headers
    finally:
        with dm_server.client() as operator:
            assert operator.put("/workspace/plan", json={"plan": "unlimited"}).status_code == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_reference_curl_example_runs_unchanged(dm_server: Server, dm: httpx.Client) -> None:
    scn = _scenario(dm)
    command = [
        "curl", "-sS", "-X", "POST", f"{dm_server.base_url}{PREFIX}/scenarios/{scn['id']}/run",
        "-H", f"Authorization: Bearer {dm_server.admin_key}",
        "-H", "Content-Type: application/json",
        "-d", '{ "params": { "environment": "regression", "size": "500" }, "wait": "true" }',
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    run = json.loads(out.stdout)
    assert run["status"] == "succeeded" and run["output"] == {"environment": "regression", "rows": 1000}


def test_the_prefix_is_configurable(backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("the prefix only changes routing, which does not depend on the database: the SQLite run covers it")
    srv = Server(data_dir=tmp_path / "data", extra_env={"RUNYARD_DATAMAKER_PREFIX": "/compat/dm"})
    srv.start(wait_ready=False).wait_ready(timeout=STARTUP_S)
    try:
        headers = {"Authorization": f"Bearer {srv.admin_key}"}
        assert _http.get(f"{srv.base_url}/compat/dm/templates", headers=headers).status_code == 200
        assert _http.get(f"{srv.base_url}{PREFIX}/templates", headers=headers).status_code == 404
    finally:
        srv.stop()


# -- the Python client's sections over these paths ---------------------------------------------
def test_python_client_sections(dm_server: Server) -> None:
    with DataMaker(api_key=dm_server.admin_key, base_url=dm_server.base_url) as client:
        tpl = client.templates.create({**TEMPLATE, "name": _unique("sdk")})
        client.templates.update(tpl["id"], {"description": "second"})
        assert client.templates.get(tpl["id"], version=1)["version"] == 1
        assert [v["version"] for v in client.templates.versions(tpl["id"])["items"]] in ([2, 1], [1, 2])
        rows = json.loads(client.templates.generate(tpl["id"], count=10, seed="s", overrides={"country": "DE"}))
        assert len(rows) == 10 and {r["country"] for r in rows} == {"DE"}
        csv = client.templates.generate(tpl["id"], count=2, format="csv", seed="s")
        assert next(csv_module.reader(io.StringIO(csv.decode()))) == ["id", "country", "amount"]
        assert len(client.templates.preview(tpl["id"])["rows"]) == 3

        name = _unique("set")
        assert client.sets.save(name, [{"a": 1}])["version"] == 1
        assert client.sets.load(name)["rows"] == [{"a": 1}]
        assert name in [s["name"] for s in client.sets.list(limit=1000)["items"]]
        client.sets.remove(name)

        fname = f"{_unique('f')}.txt"
        assert client.files.upload(fname, b"hello")["size"] == 5
        assert client.files.download(fname) == b"hello"
        assert fname in [f["name"] for f in client.files.list(prefix=fname)["items"]]
        client.files.remove(fname)

        with pytest.raises(DataMakerError) as caught:
            client.templates.get("tpl_missing")
        assert caught.value.status_code == 404 and caught.value.code == "template_not_found"
        assert client.connections.list()["total"] >= 0


def test_workspace_file_uploads_get_the_workspace_file_limit() -> None:
    """An upload through DataMaker's path streams to the blob store as runyard's own does, so
    it is held to the workspace file limit, not the smaller one of a run's input files."""
    from runyard.api.guard import body_limit

    multipart = b"multipart/form-data; boundary=x"
    own = body_limit("/api/v1/workspace/files", multipart)
    assert body_limit(f"{PREFIX}/workspace/files", multipart) == own
    assert body_limit("/compat/dm/workspace/files", multipart) == own
    assert body_limit(f"{PREFIX}/scenarios/x/run", b"application/json") < own

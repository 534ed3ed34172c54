"""/connections against the real systems on loopback: CRUD with secret parts, who may do
what, verify and metadata of each type, bad input, and the outbound-host policy."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import psycopg
import pymysql
import pytest

from tests.connections.conftest import MARIADB_HOST, MARIADB_PORT, PG_HOST, PG_PORT, Documents
from tests.support.servers import PG_URL, Server

SECRET = "s3cr3t-connection-password-0987"
OPENAPI = {
    "openapi": "3.0.3", "info": {"title": "Pets", "version": "1.2"},
    "paths": {"/pets": {"parameters": [{"name": "tenant", "in": "header"}],
                        "get": {"operationId": "listPets", "summary": "List pets",
                                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}]},
                        "post": {"operationId": "createPet", "requestBody": {"content": {}}}},
              "/pets/{id}": {"get": {"operationId": "getPet",
                                     "parameters": [{"name": "id", "in": "path", "required": True}]}}},
    "components": {"schemas": {"Pet": {"type": "object"}, "Error": {"type": "object"}}},
}
OPENAPI_YAML = b"""openapi: 3.1.0
info: {title: Yaml API, version: '1'}
paths:
  /things:
    get:
      operationId: listThings
"""
EDMX = b"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Shop" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="Order">
        <Key><PropertyRef Name="OrderID"/></Key>
        <Property Name="OrderID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="Customer" Type="Edm.String"/>
        <NavigationProperty Name="Lines" Type="Collection(Shop.Line)"/>
      </EntityType>
      <EntityType Name="Line">
        <Key><PropertyRef Name="OrderID"/><PropertyRef Name="No"/></Key>
        <Property Name="OrderID" Type="Edm.Int32" Nullable="false"/>
        <Property Name="No" Type="Edm.Int16" Nullable="false"/>
      </EntityType>
      <EntityContainer Name="Container">
        <EntitySet Name="Orders" EntityType="Shop.Order"/>
        <EntitySet Name="Lines" EntityType="Shop.Line"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""
BOMB = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">&lol2;</edmx:Edmx>"""


def code(response: httpx.Response) -> str | None:
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def create(admin: httpx.Client, name: str, type: str, config: dict) -> dict:
    made = admin.post("/connections", json={"name": name, "type": type, "config": config})
    assert made.status_code == 201, made.text
    return made.json()


def mariadb_reachable() -> bool:
    try:
        pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="", connect_timeout=3).close()
        return True
    except pymysql.err.MySQLError:
        return False


# -- CRUD, secrets, authorization -----------------------------------------------------------
def test_crud_secrets_stored_as_secrets_never_returned(conn_server: Server, admin: httpx.Client, docs: Documents):
    name = f"api-{uuid.uuid4().hex[:6]}"
    made = create(admin, name, "http", {"base_url": docs.base_url, "auth": {"type": "bearer", "token": SECRET}})
    assert made["id"].startswith("con_") and made["status"] == {"state": "unknown", "checked_at": None,
                                                                "latency_ms": None, "error": None}
    secret_name = made["config"]["auth"]["token"]["secret"]
    assert made["config"]["auth"]["token"] == {"secret": secret_name, "set": True}
    # the value is a runyard secret (masked), and no answer carries it
    secrets = admin.get("/secrets").json()["items"]
    assert any(s["name"] == secret_name for s in secrets)
    for response in (admin.get("/connections"), admin.get(f"/connections/{name}"),
                     admin.get(f"/connections/{made['id']}"), admin.post(f"/connections/{name}/verify")):
        assert response.status_code == 200 and SECRET not in response.text
    # the check sent it to the service
    assert any(h.get("Authorization") == f"Bearer {SECRET}" for _, h in docs.seen)
    # a reference to an existing secret; the owned one is deleted when no longer used
    assert admin.put("/secrets/SHARED_TOKEN", json={"value": "shared-token-value-1"}, params={"force": True}).is_success
    changed = admin.patch(f"/connections/{name}", json={"config": {"auth": {"type": "bearer",
                                                                             "token": {"secret": "SHARED_TOKEN"}}}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["auth"]["token"] == {"secret": "SHARED_TOKEN", "set": True}
    assert changed.json()["status"]["state"] == "unknown"
    assert not any(s["name"] == secret_name for s in admin.get("/secrets").json()["items"])
    missing = admin.patch(f"/connections/{name}", json={"config": {"auth": {"type": "bearer",
                                                                             "token": {"secret": "NO_SUCH"}}}})
    assert missing.status_code == 400 and code(missing) == "connection_secret_not_found"
    renamed = admin.patch(f"/connections/{made['id']}", json={"name": f"{name}-2"})
    assert renamed.status_code == 200 and renamed.json()["name"] == f"{name}-2"
    assert admin.post("/connections", json={"name": f"{name}-2", "type": "http", "config": {
        "base_url": docs.base_url}}).status_code == 409
    assert admin.delete(f"/connections/{name}-2").status_code == 204
    assert admin.get(f"/connections/{name}-2").status_code == 404
    assert any(s["name"] == "SHARED_TOKEN" for s in admin.get("/secrets").json()["items"])  # not the connection's
    # never in the server's log either
    assert SECRET not in conn_server.logs()


@pytest.mark.parametrize("body, field", [
    ({"type": "postgres", "config": {"host": "127.0.0.1", "database": "x"}}, "config.user"),
    ({"type": "postgres", "config": {"host": "127.0.0.1", "database": "x", "user": "u", "port": 70000}}, "config.port"),
    ({"type": "postgres", "config": {"host": "127.0.0.1", "database": "x", "user": "u", "sslmode": "maybe"}},
     "config.sslmode"),
    ({"type": "http", "config": {"base_url": "ftp://127.0.0.1/"}}, "config.base_url"),
    ({"type": "http", "config": {"base_url": "http://127.0.0.1/", "auth": {"type": "magic"}}}, "config.auth.type"),
    ({"type": "http", "config": {"base_url": "http://127.0.0.1/", "auth": {"type": "bearer"}}}, "config.auth.token"),
    ({"type": "http", "config": {"base_url": "http://127.0.0.1/", "extra": 1}}, "config"),
    ({"type": "s3", "config": {"bucket": "Bad_Bucket", "access_key_id": "a", "secret_access_key": "b"}},
     "config.bucket"),
    ({"type": "mcp", "config": {"url": "http://127.0.0.1/mcp", "command": ["x"]}}, "config.url"),
    ({"type": "mcp", "config": {"url": "http://127.0.0.1/mcp", "transport": "carrier-pigeon"}}, "config.transport"),
])
def test_bad_config_is_refused_and_nothing_made(admin: httpx.Client, body: dict, field: str):
    name = f"bad-{uuid.uuid4().hex[:6]}"
    response = admin.post("/connections", json={"name": name, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"].get("field") == field, response.text
    assert admin.get(f"/connections/{name}").status_code == 404


def test_only_admins_manage_readers_list_without_secrets(conn_server: Server, admin: httpx.Client, docs: Documents):
    name = f"authz-{uuid.uuid4().hex[:6]}"
    create(admin, name, "http", {"base_url": docs.base_url, "auth": {"type": "header", "name": "X-Key",
                                                                     "value": SECRET}})
    for role in ("viewer", "member"):
        key = admin.post("/tokens", json={"name": f"{role}-{name}", "role": role}).json()["key"]
        with conn_server.client(key) as client:
            listed = client.get("/connections")
            assert listed.status_code == 200 and SECRET not in listed.text
            assert any(c["name"] == name for c in listed.json()["items"])
            assert client.get(f"/connections/{name}").status_code == 200
            for response in (client.post("/connections", json={"name": f"x-{name}", "type": "http",
                                                                "config": {"base_url": docs.base_url}}),
                             client.patch(f"/connections/{name}", json={"config": {"base_url": docs.base_url}}),
                             client.delete(f"/connections/{name}"), client.post(f"/connections/{name}/verify"),
                             client.get(f"/connections/{name}/metadata")):
                assert response.status_code == 403 and code(response) == "insufficient_role", response.text
    assert admin.get(f"/connections/{name}").status_code == 200


# -- databases ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_table() -> str:
    if not PG_URL:
        pytest.skip("RUNYARD_TEST_DATABASE_URL is not set: no PostgreSQL server to connect to")
    table = f"conn_pets_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL, born date)")
    yield table
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_postgres_verify_and_metadata(admin: httpx.Client, pg_table: str):
    name = f"pg-{uuid.uuid4().hex[:6]}"
    create(admin, name, "postgres", {"host": PG_HOST, "port": PG_PORT, "database": "test", "user": "postgres",
                                     "password": SECRET, "sslmode": "disable"})
    verified = admin.post(f"/connections/{name}/verify")
    assert verified.status_code == 200, verified.text
    status = verified.json()["status"]
    assert status["state"] == "ok" and status["latency_ms"] > 0 and status["checked_at"] and status["error"] is None
    meta = admin.get(f"/connections/{name}/metadata")
    assert meta.status_code == 200, meta.text
    public = next(s for s in meta.json()["metadata"]["schemas"] if s["name"] == "public")
    table = next(t for t in public["tables"] if t["name"] == pg_table)
    assert table["columns"] == [{"name": "id", "type": "integer", "nullable": False},
                                {"name": "name", "type": "text", "nullable": False},
                                {"name": "born", "type": "date", "nullable": True}]
    missing_db = create(admin, f"{name}-nodb", "postgres", {"host": PG_HOST, "port": PG_PORT, "user": "postgres",
                                                            "database": "no_such_db_here", "sslmode": "disable"})
    status = admin.post(f"/connections/{missing_db['id']}/verify").json()["status"]
    assert status["state"] == "failed" and "does not exist" in status["error"] and status["latency_ms"] is None


@pytest.fixture(scope="module")
def maria_table() -> str:
    if not mariadb_reachable():
        pytest.skip(f"no MariaDB/MySQL server answers on {MARIADB_HOST}:{MARIADB_PORT} as root")
    table = f"conn_items_{uuid.uuid4().hex[:6]}"
    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="", database="test",
                           autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, label VARCHAR(40) NULL)")
    yield table
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
    conn.close()


def test_mysql_verify_metadata_and_a_wrong_password(admin: httpx.Client, maria_table: str):
    name = f"maria-{uuid.uuid4().hex[:6]}"
    create(admin, name, "mysql", {"host": MARIADB_HOST, "port": MARIADB_PORT, "database": "test", "user": "root"})
    status = admin.post(f"/connections/{name}/verify").json()["status"]
    assert status["state"] == "ok" and status["latency_ms"] > 0, status
    meta = admin.get(f"/connections/{name}/metadata").json()["metadata"]
    table = next(t for s in meta["schemas"] for t in s["tables"] if t["name"] == maria_table)
    assert table["columns"] == [{"name": "id", "type": "int(11)", "nullable": False},
                                {"name": "label", "type": "varchar(40)", "nullable": True}]
    # reached, and refused: distinguishable from unreachable
    wrong = create(admin, f"{name}-wrong", "mysql", {"host": MARIADB_HOST, "port": MARIADB_PORT, "database": "test",
                                                     "user": "root", "password": "not-the-password"})
    status = admin.post(f"/connections/{wrong['id']}/verify").json()["status"]
    assert status["state"] == "failed" and status["error"].startswith("authentication failed"), status
    assert "not-the-password" not in json.dumps(status)


# -- unreachable looks the same, whatever the reason -------------------------------------------
def test_unreachable_reads_the_same_for_a_closed_port_a_silent_one_and_no_such_host(
        admin: httpx.Client, closed_port: int, silent_port: int):
    errors = []
    for label, config in (
            ("closed", {"host": "127.0.0.1", "port": closed_port}),
            ("silent", {"host": "127.0.0.1", "port": silent_port, "timeout_s": 1}),
            ("nxdomain", {"host": "no-such-host.invalid", "port": 5432})):
        made = create(admin, f"down-{label}-{uuid.uuid4().hex[:6]}", "postgres",
                      {**config, "database": "x", "user": "u", "sslmode": "disable"})
        verified = admin.post(f"/connections/{made['id']}/verify")
        assert verified.status_code == 200, verified.text  # recorded, not raised
        status = verified.json()["status"]
        assert status["state"] == "failed" and status["latency_ms"] is None
        errors.append(status["error"])
    http_down = create(admin, f"down-http-{uuid.uuid4().hex[:6]}", "http",
                       {"base_url": f"http://127.0.0.1:{silent_port}", "timeout_s": 1})
    errors.append(admin.post(f"/connections/{http_down['id']}/verify").json()["status"]["error"])
    assert len(set(errors)) == 1 and "unreachable" in errors[0], errors
    assert str(closed_port) not in errors[0] and "ms" not in errors[0]
    meta = admin.get(f"/connections/{http_down['id']}/metadata")
    assert meta.status_code == 502 and code(meta) == "connection_unreachable"


# -- the outbound-host policy ----------------------------------------------------------------
@pytest.mark.parametrize("type, config", [
    ("http", {"base_url": "http://169.254.169.254/latest/meta-data"}),
    ("http", {"base_url": "http://metadata.google.internal/"}),
    ("postgres", {"host": "10.1.2.3", "database": "x", "user": "u"}),
    ("mysql", {"host": "::1", "database": "x", "user": "u"}),  # loopback, but only 127.0.0.1 is allowed
    ("s3", {"endpoint_url": "http://192.168.0.10:9000", "bucket": "b-1", "access_key_id": "a",
            "secret_access_key": "b"}),
])
def test_metadata_private_and_unlisted_loopback_addresses_are_refused(admin: httpx.Client, type: str, config: dict):
    name = f"ssrf-{uuid.uuid4().hex[:6]}"
    response = admin.post("/connections", json={"name": name, "type": type, "config": config})
    assert response.status_code == 400 and code(response) == "outbound_host_refused", response.text
    assert "RUNYARD_ALLOWED_HOSTS" in response.json()["error"]["message"]
    assert admin.get(f"/connections/{name}").status_code == 404


def test_redirects_are_not_followed(admin: httpx.Client, docs: Documents):
    docs.routes["/moved/openapi.json"] = (302, {"Location": "/target/openapi.json"}, b"")
    docs.routes["/target/openapi.json"] = (200, {"Content-Type": "application/json"}, json.dumps(OPENAPI).encode())
    made = create(admin, f"redir-{uuid.uuid4().hex[:6]}", "openapi", {"base_url": f"{docs.base_url}/moved"})
    meta = admin.get(f"/connections/{made['id']}/metadata")
    assert meta.status_code == 502 and code(meta) == "connection_failed" and "redirect" in meta.text, meta.text
    assert not any(path.startswith("/target") for path, _ in docs.seen)


# -- http / openapi / odata ------------------------------------------------------------------
def test_openapi_metadata_json_and_yaml(admin: httpx.Client, docs: Documents):
    docs.routes["/api/openapi.json"] = (200, {"Content-Type": "application/json"}, json.dumps(OPENAPI).encode())
    docs.routes["/api/spec.yaml"] = (200, {"Content-Type": "application/yaml"}, OPENAPI_YAML)
    docs.routes["/api/health"] = (204, {}, b"")
    made = create(admin, f"oa-{uuid.uuid4().hex[:6]}", "openapi",
                  {"base_url": f"{docs.base_url}/api", "health_path": "health",
                   "auth": {"type": "basic", "username": "ann", "password": SECRET}})
    assert admin.post(f"/connections/{made['id']}/verify").json()["status"]["state"] == "ok"
    meta = admin.get(f"/connections/{made['id']}/metadata")
    assert meta.status_code == 200, meta.text
    found = meta.json()["metadata"]
    assert found["title"] == "Pets" and found["schemas"] == ["Error", "Pet"]
    ops = {(o["method"], o["path"]): o for o in found["operations"]}
    assert set(ops) == {("GET", "/pets"), ("POST", "/pets"), ("GET", "/pets/{id}")}
    assert ops[("GET", "/pets")]["operation_id"] == "listPets"
    assert [p["name"] for p in ops[("GET", "/pets")]["parameters"]] == ["tenant", "limit"]
    assert SECRET not in meta.text
    basic = "Basic " + base64.b64encode(f"ann:{SECRET}".encode()).decode()
    assert any(h.get("Authorization") == basic for p, h in docs.seen if p == "/api/openapi.json")
    yaml_conn = create(admin, f"oay-{uuid.uuid4().hex[:6]}", "openapi",
                       {"base_url": f"{docs.base_url}/api", "openapi_url": "spec.yaml"})
    found = admin.get(f"/connections/{yaml_conn['id']}/metadata").json()["metadata"]
    assert [o["operation_id"] for o in found["operations"]] == ["listThings"]


@pytest.mark.parametrize("body, where", [
    (b'{"openapi": "3.0.0", "paths": {', "line 1"),
    (b"openapi: 3.0.0\npaths:\n  /x: [unclosed\n", "line"),
    (json.dumps({"info": {}}).encode(), "$.openapi"),
    (json.dumps({"openapi": "3.0.0", "paths": {"/x": {"get": {"parameters": [{"in": "query"}]}}}}).encode(),
     "$.paths['/x'].get.parameters[0]"),
    (b"a: &a [x, x]\nb: [*a, *a]\n", "line"),  # aliases (the expansion bomb's tool) refused
])
def test_invalid_openapi_is_400_with_where(admin: httpx.Client, docs: Documents, body: bytes, where: str):
    path = f"/bad-{uuid.uuid4().hex[:6]}"
    docs.routes[f"{path}/openapi.json"] = (200, {}, body)
    made = create(admin, f"oab-{uuid.uuid4().hex[:6]}", "openapi", {"base_url": f"{docs.base_url}{path}"})
    meta = admin.get(f"/connections/{made['id']}/metadata")
    assert meta.status_code == 400 and code(meta) == "invalid_openapi", meta.text
    assert meta.json()["error"]["details"]["where"].startswith(where), meta.text


def test_odata_metadata(admin: httpx.Client, docs: Documents):
    docs.routes["/odata/$metadata"] = (200, {"Content-Type": "application/xml"}, EDMX)
    made = create(admin, f"od-{uuid.uuid4().hex[:6]}", "odata", {"base_url": f"{docs.base_url}/odata/"})
    assert admin.post(f"/connections/{made['id']}/verify").json()["status"]["state"] == "ok"
    found = admin.get(f"/connections/{made['id']}/metadata").json()["metadata"]
    assert found["entity_sets"] == [{"name": "Orders", "entity_type": "Shop.Order"},
                                    {"name": "Lines", "entity_type": "Shop.Line"}]
    order = next(t for t in found["entity_types"] if t["name"] == "Order")
    assert order["keys"] == ["OrderID"]
    assert order["properties"] == [{"name": "OrderID", "type": "Edm.Int32", "nullable": False},
                                   {"name": "Customer", "type": "Edm.String", "nullable": True}]
    assert order["navigation_properties"][0]["name"] == "Lines"
    line = next(t for t in found["entity_types"] if t["name"] == "Line")
    assert line["keys"] == ["OrderID", "No"]


@pytest.mark.parametrize("body, where", [
    (b"<edmx:Edmx xmlns:edmx='x'><unclosed></edmx:Edmx>", "line 1"),
    (b"<html><body>not edmx</body></html>", "root"),
    (BOMB, "document type declaration"),
])
def test_invalid_edmx_is_400_with_where(admin: httpx.Client, docs: Documents, body: bytes, where: str):
    path = f"/odbad-{uuid.uuid4().hex[:6]}"
    docs.routes[f"{path}/$metadata"] = (200, {}, body)
    made = create(admin, f"odb-{uuid.uuid4().hex[:6]}", "odata", {"base_url": f"{docs.base_url}{path}"})
    meta = admin.get(f"/connections/{made['id']}/metadata")
    assert meta.status_code == 400 and code(meta) == "invalid_edmx", meta.text
    assert meta.json()["error"]["details"]["where"].startswith(where), meta.text


# -- s3 ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_s3():
    # both come with the test install (bootstrap's "server,test"); only a bare server install lacks them
    moto_server = pytest.importorskip("moto.server", reason="moto[server] (a test dependency) is not installed")
    boto3 = pytest.importorskip("boto3", reason="boto3 (a server dependency) is not installed")
    from tests.support.servers import free_port

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDTEST",
                      aws_secret_access_key="moto-secret")
    s3.create_bucket(Bucket="runyard-conn")
    for key in ("a.csv", "reports/2026/q1.parquet", "reports/2026/q2.parquet", "z.json"):
        s3.put_object(Bucket="runyard-conn", Key=key, Body=b"x" * 3)
    yield endpoint
    server.stop()


def test_s3_verify_and_metadata_against_moto(admin: httpx.Client, moto_s3: str):
    made = create(admin, f"s3-{uuid.uuid4().hex[:6]}", "s3", {"endpoint_url": moto_s3, "bucket": "runyard-conn",
                                                             "access_key_id": "AKIDTEST",
                                                             "secret_access_key": "moto-secret"})
    assert made["config"]["secret_access_key"]["set"] is True
    status = admin.post(f"/connections/{made['id']}/verify").json()["status"]
    assert status["state"] == "ok", status
    found = admin.get(f"/connections/{made['id']}/metadata").json()["metadata"]
    assert [o["key"] for o in found["objects"]] == ["a.csv", "z.json"] and found["prefixes"] == ["reports/"]
    missing = create(admin, f"s3m-{uuid.uuid4().hex[:6]}", "s3", {"endpoint_url": moto_s3, "bucket": "no-such-bucket",
                                                                 "access_key_id": "AKIDTEST",
                                                                 "secret_access_key": "moto-secret"})
    status = admin.post(f"/connections/{missing['id']}/verify").json()["status"]
    assert status["state"] == "failed" and "not found" in status["error"]


def test_a_document_over_the_size_cap_is_refused_unread(admin: httpx.Client, docs: Documents):
    path = f"/big-{uuid.uuid4().hex[:6]}"
    docs.routes[f"{path}/openapi.json"] = (200, {}, b"{" + b" " * (6 * 1024 * 1024) + b"}")
    made = create(admin, f"big-{uuid.uuid4().hex[:6]}", "openapi", {"base_url": f"{docs.base_url}{path}"})
    meta = admin.get(f"/connections/{made['id']}/metadata")
    assert meta.status_code == 400 and code(meta) == "metadata_too_large", meta.text

"""The OpenAPI description against the server that serves it: the error envelope and
bearer auth on every operation, ``Allow`` on 405, ``/docs`` served air-gapped, and a
bounded schemathesis run (every check) finding no 5xx and no spec violation."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from tests.support.servers import Server

ERROR_REF = "#/components/schemas/ErrorEnvelope"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture(scope="module")
def spec(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.api}/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()


PUBLIC_API = {("post", "/api/v1/auth/login"), ("put", "/api/v1/uploads/{upload_id}/parts/{part_number}"),
              ("post", "/hooks/{token}")}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in spec["paths"].items()
            for method, op in item.items() if method in HTTP_METHODS]


def test_every_operation_documents_errors_and_bearer_auth(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    envelope = spec["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"code", "message", "details", "request_id"}
    operations = _operations(spec)
    assert len(operations) > 20
    for path, method, op in operations:
        label = f"{method.upper()} {path}"
        errors = {code: r for code, r in op["responses"].items() if code.startswith("4")}
        for code, response in errors.items():
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == ERROR_REF, f"{label} {code} is not the error envelope"
        if (method, path) in PUBLIC_API:  # authorized otherwise: a password, a signed URL
            # (a signed webhook answers 401 for a bad signature, as signing in for a bad password)
            assert errors and not op.get("security") and "401" not in errors or "login" in path \
                or path == "/hooks/{token}", label
            continue
        if path.startswith("/api/v1/"):
            assert errors, f"{label} documents no 4xx"
            assert op.get("security") == [{"bearerAuth": []}], f"{label} has no bearer security"
            assert {"401", "403", "429"} <= set(errors), f"{label}: {sorted(errors)}"
            assert "Retry-After" in errors["429"]["headers"]
        else:  # the probes: public, and nothing they take can be wrong
            assert path in ("/healthz", "/readyz") and not errors and "security" not in op, label


def test_error_bodies_match_the_documented_envelope(server: Server) -> None:
    with httpx.Client(base_url=server.api, timeout=30) as anonymous:
        response = anonymous.get("/runs")
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] in ("unauthenticated", "missing_api_key") and error["request_id"] == response.headers["x-request-id"]


def test_405_names_every_allowed_method(api: httpx.Client) -> None:
    response = api.delete("/runs")  # GET and POST /runs are two routes
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}
    response = api.post("/tools/some-tool")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


def test_what_schemathesis_found_stays_fixed(api: httpx.Client, unique: str) -> None:
    # A column of empty objects made Parquet refuse the set: a 500 before.
    response = api.post("/sets", json={"name": f"empty-{unique}", "rows": [{"a": {}}]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_rows"
    # `expand` takes one value; anything else was silently ignored (on the fast lane too).
    for response in (api.post("/runs?expand=everything", json={"tool": f"t-{unique}"}),
                     api.get("/runs/run_missing", params={"expand": "everything"})):
        assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_docs_work_offline(server: Server) -> None:
    """/docs and every asset it names come from the server itself; nothing external."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert not re.search(r"https?://", html), "the docs page references an external URL"
        assert "validatorUrl" in html and '"validatorUrl": null' in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        assert "/api/v1/openapi.json" in html
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), asset
            response = client.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 1000, asset
            text = response.content.decode("utf-8", errors="replace")
            # Swagger UI's bundle mentions spec and RFC URLs in strings; what matters is
            # that nothing is loaded from a CDN, font service or the validator.
            for host in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com",
                         "fonts.gstatic.com"):
                assert host not in text, f"{asset} references {host}"
            if asset.endswith(".css"):
                assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), f"{asset} loads an external url()"


# -- schemathesis ------------------------------------------------------------------------------
# Long waits are capped (the spec allows up to 600 s) and the SSE follow mode of the logs
# is left out: a generated request must answer promptly.
MAX_EXAMPLES = 10
_CAPPED = {"wait": 0.5, "timeout": 0.5}
_LEFT_OUT = {("/api/v1/runs/{run_id}/logs", "follow"), ("/api/v1/runs/{run_id}/logs", "last-event-id"),
             # its 0-300 s bound is checked in tests/workspace; capped here it would read as wrong
             ("/api/v1/ingestions/{ingestion_id}/wait", "timeout")}
# Streams that follow a run for `wait` seconds (300 by default): always sent, capped.
_ALWAYS_CAPPED = {"/api/v1/ingest-proxy/runs/{run_id}/stream"}
# Opaque page cursors come from `next_cursor`; a generated one is rightly refused (400).
_OPAQUE = {"cursor"}
# Operations whose bodies carry what JSON Schema cannot state: Python source that must
# compile and define its entrypoint, inputs checked against the tool's own schema, the
# template language, an expiry that must lie ahead. Valid-looking bodies may get a
# 400 there; every other operation must accept whatever its schema allows.
_SEMANTIC_400 = [("POST", "/api/v1/tools"), ("PATCH", "/api/v1/tools/{ref}"), ("POST", "/api/v1/runs"),
                 ("POST", "/api/v1/runs/{run_id}/files"), ("POST", "/api/v1/tokens"),
                 ("POST", "/api/v1/templates"), ("PATCH", "/api/v1/templates/{ref}"),
                 ("POST", "/api/v1/templates/{ref}/preview"), ("POST", "/api/v1/templates/{ref}/generate"),
                 # SQL that must parse and name datasets that exist; a sort order that must be a
                 # permutation of the columns; an upload's parts and key; a preview's one source;
                 # a user name that must not read as an id; rows over the column limit
                 ("POST", "/api/v1/query"), ("PATCH", "/api/v1/namespaces/{ns}/datasets/{ds}"),
                 ("POST", "/api/v1/uploads/{upload_id}/complete"), ("POST", "/api/v1/ingest/preview"),
                 ("POST", "/api/v1/infer-schema"), ("POST", "/api/v1/users"),
                 ("POST", "/api/v1/namespaces/{ns}/datasets/{ds}/rows"),
                 ("POST", "/api/v1/namespaces/{ns}/datasets/{ds}/files"),
                 ("GET", "/api/v1/usage/daily"),  # an IANA time zone name
                 # a tool that must exist and take the inputs; a cron that must fire, a time zone
                 ("POST", "/api/v1/schedules"), ("PATCH", "/api/v1/schedules/{schedule_id}"),
                 ("POST", "/api/v1/webhooks"), ("PATCH", "/api/v1/webhooks/{webhook_id}"),
                 # the body becomes a tool's inputs (a JSON object it must take)
                 ("POST", "/hooks/{token}"),
                 # a connection's config: the fields its type takes, hosts the outbound policy allows
                 ("POST", "/api/v1/connections"), ("PATCH", "/api/v1/connections/{connection}"),
                 # numbers only with a custom or enterprise plan, and a custom plan needs one
                 ("PUT", "/api/v1/workspace/plan"),
                 # a file name without /, \, .. or control characters (services.workspace_files)
                 ("POST", "/api/v1/workspace/files"), ("GET", "/api/v1/workspace/files/{name}"),
                 ("DELETE", "/api/v1/workspace/files/{name}"),
                 # exactly one of data and data_url, names that must be data names, a schema
                 # that must fit the rows; a hook's answer that must fit the hook's kind
                 ("POST", "/api/v1/ingest-proxy/runs"), ("POST", "/api/v1/ingest-proxy/runs/{run_id}/hook"),
                 # 1-10 prompts that are not blank, a new dataset's name that must be a data name
                 ("POST", "/api/v1/namespaces/{ns}/datasets/{ds}/cleaning"),
                 # numbered pages never with cursor, offset or limit; a search's fields, ops and
                 # values that must fit one another (services.run_search)
                 ("GET", "/api/v1/runs"), ("POST", "/api/v1/runs/search"),
                 # evaluation: a file name without /, \\, .. or control characters, something to set
                 # or compare (one of run_id and expected), feedback values, examples whose ids are
                 # unique and whose inputs the tool takes (services.expected, feedback, eval_batches)
                 ("POST", "/api/v1/runs/{run_id}/expected"), ("GET", "/api/v1/runs/{run_id}/expected/{filename}"),
                 ("PATCH", "/api/v1/runs/{run_id}/expected/{filename}"),
                 ("DELETE", "/api/v1/runs/{run_id}/expected/{filename}"), ("POST", "/api/v1/runs/{run_id}/compare"),
                 ("PATCH", "/api/v1/runs/{run_id}/feedback"), ("POST", "/api/v1/batches")]


# Multipart form fields are text: a "number" sent as a file's name is a name like any other.
_TEXT_FORM_FIELDS = [("POST", "/api/v1/workspace/files")]
# Left out of the fuzzed spec: a plan's storage quota, which the fuzzer (the operator) would
# set to a few bytes and so turn every later write into a rightful 413 (tested in tests/plans).
_UNFUZZED_PROPERTIES = {"PlanUpdate": ("storage_bytes",)}


def _operation_checks() -> dict[tuple[str, str], dict[str, Any]]:
    checks: dict[tuple[str, str], dict[str, Any]] = {}
    for operation in _SEMANTIC_400:
        checks.setdefault(operation, {})["positive_data_acceptance"] = {
            "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]}
    for operation in _TEXT_FORM_FIELDS:
        checks.setdefault(operation, {})["negative_data_rejection"] = {"enabled": False}
    return checks


def _bounded(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for schema_name, names in _UNFUZZED_PROPERTIES.items():
        for property_name in names:
            del spec["components"]["schemas"][schema_name]["properties"][property_name]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            params = [p for p in op.get("parameters", [])
                      if (path, p["name"].lower()) not in _LEFT_OUT and p["name"] not in _OPAQUE]
            for param in params:
                if param["name"] in _CAPPED and param["in"] == "query":
                    schema = param["schema"]
                    options = schema.get("anyOf", [schema])
                    for option in options:
                        if option.get("type") in ("number", "integer"):
                            option["maximum"] = _CAPPED[param["name"]]
                    if path in _ALWAYS_CAPPED:
                        param["required"] = True  # left out, it would follow for its default
            op["parameters"] = params
    return spec


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: the run creates tokens, secrets and tools at random."""
    srv = Server(data_dir=tmp_path_factory.mktemp("runyard-schemathesis"), slots=2)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _describe(event: Any, check: Any) -> tuple[str, str]:
    """(operation and check, what failed and how to reproduce it)."""
    failure = check.failure_info.failure
    key = f"{failure.operation or event.label}: {check.name}"
    return key, f"{key}: {failure.title}\n{failure.message}\n{check.failure_info.code_sample}"


@pytest.mark.timeout(900)  # ~3 min on a quiet 2-core machine; a loaded one takes far longer
def test_api_conforms_to_its_spec(fuzzed_server: Server) -> None:
    """Schemathesis with every check (``--checks all``) over every operation, through its
    engine (the phases ``schemathesis run`` has: examples, coverage, fuzzing, stateful):
    no 5xx; statuses, content types, headers and bodies as documented; invalid input
    rejected; valid input accepted; auth enforced; 405 with ``Allow``."""
    spec = httpx.get(f"{fuzzed_server.api}/openapi.json", timeout=30).json()
    config = SchemathesisConfig.from_dict({
        "base-url": fuzzed_server.base_url,
        "headers": {"Authorization": f"Bearer {fuzzed_server.admin_key}"},
        "request-timeout": 30,
        "seed": 20261125,
        "generation": {"max-examples": MAX_EXAMPLES},
        "operations": [{"include-method": method, "include-path": path, "checks": checks}
                       for (method, path), checks in _operation_checks().items()],
    })
    schema = schemathesis.openapi.from_dict(_bounded(spec), config=config)
    failures: dict[str, str] = {}  # one example per operation and check
    errors: list[str] = []
    tested: set[str] = set()
    requests = 0
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label and event.status != Status.SKIP:
                tested.add(event.label)
            requests += len(event.recorder.interactions)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        key, text = _describe(event, check)
                        failures.setdefault(key, text)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.format() if hasattr(event.info, 'format') else event.value!r}")
        elif isinstance(event, events.FatalError):
            errors.append(repr(event.exception))
    assert not errors, "\n\n".join(errors)
    assert not failures, f"{len(failures)} failing operation/check pair(s):\n\n" + "\n\n".join(
        failures[key] for key in sorted(failures))
    operations = {f"{method.upper()} {path}" for path, method, _ in _operations(spec)}
    assert operations <= tested, f"not tested: {sorted(operations - tested)}"
    assert requests > 20 * len(operations), requests
    assert "unhandled error" not in fuzzed_server.logs(), fuzzed_server.logs()[-5000:]

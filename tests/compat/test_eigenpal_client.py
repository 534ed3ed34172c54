"""``runyard.compat.eigenpal``: Eigenpal's Python surface over runyard, end to end against a
real server on loopback (real runs in child processes)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from runyard.compat.eigenpal import (
    EigenpalAuthError,
    EigenpalClient,
    EigenpalError,
    EigenpalForbiddenError,
    EigenpalNotFoundError,
    EigenpalNotSupportedError,
    EigenpalRateLimitError,
    EigenpalValidationError,
)
from tests.support.api import deploy
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(300)

REPORTER = '''
import json, os

def main(name: str, n: int = 1):
    out = os.environ["RUNYARD_OUTPUT_DIR"]
    os.makedirs(os.path.join(out, "output"), exist_ok=True)
    with open(os.path.join(out, "output", "report.csv"), "w") as fh:
        fh.write("name,n\\n" + name + "," + str(n) + "\\n")
    with open(os.path.join(out, "output", "notes.txt"), "w") as fh:
        fh.write("notes for " + name)
    print("reported", name, flush=True)
    return {"name": name, "n": n, "version": 1}
'''
READER = "def main(doc: str, label: str = ''):\n    return label + open(doc).read()\n"
SLEEPER = "import time\n\ndef main(seconds: float = 60):\n    time.sleep(seconds)\n"


@pytest.fixture
def client(server: Server) -> Iterator[EigenpalClient]:
    with EigenpalClient(api_key=server.admin_key, base_url=server.base_url, timeout_seconds=60) as made:
        yield made


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _key(api: httpx.Client, role: str) -> str:
    made = api.post("/tokens", json={"name": _name(role), "role": role})
    assert made.status_code == 201, made.text
    return made.json()["key"]


def _invoice_workflow(api: httpx.Client) -> str:
    tool, name = _name("reader"), _name("extract-invoice")
    deploy(api, tool, READER)
    saved = api.post("/workflows", json={"definition": {
        "name": name,
        "inputs": {"type": "object", "properties": {"contract": {"type": "string", "format": "file"},
                                                    "label": {"type": "string", "default": ""}},
                   "required": ["contract"]},
        "steps": [{"id": "read", "uses": tool, "with": {"doc": "${{ inputs.contract }}",
                                                         "label": "${{ inputs.label }}"}}],
        "outputs": {"text": "${{ steps.read.output }}"}}})
    assert saved.status_code == 201, saved.text
    return name


def test_quick_example_run_and_wait_uploads_a_path(client: EigenpalClient, api: httpx.Client,
                                                   tmp_path: Path) -> None:
    name = _invoice_workflow(api)
    contract = tmp_path / "contract.pdf"
    contract.write_bytes(b"%PDF pay 42 EUR")
    result = client.workflows.executions.run_and_wait(name, input={"contract": contract, "label": "got: "})
    assert result["finished"] is True and result["status"] == "succeeded"
    assert result["output"] == {"text": "got: %PDF pay 42 EUR"}

    # The run's files: the uploaded input, named as sent.
    files = client.runs.files.list(result["id"])
    inputs = [f for f in files["items"] if f.get("direction") == "input"]
    assert inputs and inputs[0]["name"] in ("contract.pdf", "contract")
    # The definition the workflow run used, and its step trace.
    assert client.runs.definition(result["id"])["version"] == 1
    trace = client.runs.trace.get(result["id"])
    assert [step.get("step_id") or step.get("id") for step in trace["items"]] == ["read"]

    listed = client.workflows.list(name=name)
    assert [w["name"] for w in listed["items"]] == [name]
    assert client.workflows.get(name)["name"] == name
    assert [v["version"] for v in client.workflows.versions(name)["items"]] == [1]
    assert client.workflows.list(name=name, offset=1)["items"] == []
    unfiled = client.workflows.list(folder_id="null", limit=100)
    assert name in [w["name"] for w in unfiled["items"]] and all(w["folder_id"] is None for w in unfiled["items"])
    with pytest.raises(EigenpalValidationError):
        client.workflows.list(limit=500)


def test_run_rerun_defaults_to_the_latest_version(client: EigenpalClient, api: httpx.Client) -> None:
    tool = _name("report")
    deploy(api, tool, REPORTER)
    started = (datetime.now(UTC) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = client.run(tool=tool, input={"name": "ada", "n": 2}, wait_for_completion=60,
                       tags={"source_ref": "git:abc123"})
    assert first["status"] == "succeeded" and first["output"] == {"name": "ada", "n": 2, "version": 1}
    assert api.patch(f"/tools/{tool}", json={"code": REPORTER.replace('"version": 1', '"version": 2')}).status_code \
        == 200

    latest = client.rerun(first["id"], wait_for_completion=60)
    assert latest["tool_version"] == 2 and latest["output"]["version"] == 2
    original = client.rerun(first["id"], version="original", wait_for_completion=60)
    assert original["tool_version"] == 1

    # list: Eigenpal's filters, incl. source_ref and from/to.
    by_ref = client.runs.list(source_ref="git:abc123", source=tool)  # reruns keep the source run's tags
    assert {r["id"] for r in by_ref["items"]} == {first["id"], latest["id"], original["id"]}
    assert client.runs.list(source_ref="git:other", source=tool)["items"] == []
    window = client.runs.list(source=tool, **{"from": started}, to="2999-01-01T00:00:00Z", limit=10)
    assert {r["id"] for r in window["items"]} == {first["id"], latest["id"], original["id"]}
    assert client.runs.list(source=tool, from_="2999-01-01T00:00:00Z")["items"] == []
    assert len(client.runs.list(ids=[first["id"], latest["id"]])["items"]) == 2
    with pytest.raises(TypeError):
        client.runs.list(colour="blue")

    detail = client.runs.get(first["id"], expand="input,usage,execution,debug")
    assert detail["inputs"] == {"name": "ada", "n": 2}
    assert detail["usage"] is not None and "execution" in detail and "debug" in detail
    with pytest.raises(EigenpalValidationError):
        client.runs.get(first["id"], expand="secrets")

    live = client.runs.connect(first["id"])
    assert live["url"].startswith("ws") and f"/runs/{first['id']}/live" in live["url"]


def test_artifacts_and_zip_subset(client: EigenpalClient, api: httpx.Client) -> None:
    tool = _name("report")
    deploy(api, tool, REPORTER)
    run = client.run(tool=tool, input={"name": "grace"}, wait_for_completion=60)
    paths = sorted(a["path"] for a in client.runs.artifacts.list(run["id"])["items"])
    assert paths == ["output/notes.txt", "output/report.csv"]
    assert client.runs.artifacts.download(run["id"], "output/report.csv") == b"name,n\ngrace,1\n"
    whole = zipfile.ZipFile(io.BytesIO(client.runs.artifacts.download_zip(run["id"])))
    assert sorted(whole.namelist()) == paths
    subset = zipfile.ZipFile(io.BytesIO(client.runs.artifacts.download_zip(run["id"], files="output/notes.txt")))
    assert subset.namelist() == ["output/notes.txt"] and subset.read("output/notes.txt") == b"notes for grace"
    with pytest.raises(EigenpalNotFoundError):
        client.runs.artifacts.download_zip(run["id"], files=["output/missing.txt"])


def test_expected_comparison_compare_and_feedback(client: EigenpalClient, api: httpx.Client) -> None:
    tool = _name("report")
    deploy(api, tool, REPORTER)
    run = client.run(tool=tool, input={"name": "ada"}, wait_for_completion=60)
    with pytest.raises(EigenpalNotFoundError) as missing:
        client.runs.comparison.get(run["id"])
    assert missing.value.code == "expected_not_found" and missing.value.status == 404
    assert missing.value.envelope["error"]["code"] == "expected_not_found" and missing.value.request_id

    saved = client.runs.expected.copy_output(run["id"], artifacts=["output/report.csv"])
    assert saved["has_output"] is True and [f["filename"] for f in saved["files"]] == ["report.csv"]
    assert client.runs.expected.list(run["id"])["output"] == run["output"]
    assert client.runs.expected.download(run["id"], "report.csv") == b"name,n\nada,1\n"
    uploaded = client.runs.expected.upload(run["id"], {"extra.txt": b"more"})
    assert sorted(f["filename"] for f in uploaded["files"]) == ["extra.txt", "report.csv"]
    renamed = client.runs.expected.rename(run["id"], "extra.txt", "renamed.txt")
    assert "renamed.txt" in [f["filename"] for f in renamed["files"]]
    client.runs.expected.delete(run["id"], "renamed.txt")
    assert [f["filename"] for f in client.runs.expected.list(run["id"])["files"]] == ["report.csv"]

    comparison = client.runs.comparison.get(run["id"])
    assert comparison["score"] == 1.0
    other = client.run(tool=tool, input={"name": "bob"}, wait_for_completion=60)
    against_run = client.runs.compare(other["id"], run_id=run["id"])
    assert against_run["score"] < 1.0 and against_run["against"]["kind"] == "run"
    against_value = client.runs.compare(run["id"], expected={"name": "ada", "n": 1, "version": 1})
    assert against_value["score"] == 1.0

    feedback = client.runs.feedback.update(run["id"], rating="up", comment="right", labels=["ok"])
    assert feedback["rating"] == "up" and feedback["resolved"] is False
    assert client.runs.feedback.get(run["id"])["comment"] == "right"
    assert client.runs.feedback.resolve(run["id"])["resolved"] is True
    client.runs.feedback.clear(run["id"])
    with pytest.raises(EigenpalNotFoundError):
        client.runs.feedback.get(run["id"])


def test_cancel_and_files_of_a_run_not_started(client: EigenpalClient, api: httpx.Client) -> None:
    tool = _name("sleepy")
    deploy(api, tool, SLEEPER)
    run = client.run(tool=tool, input={"seconds": 60})
    cancelled = client.runs.cancel(run["id"])
    assert cancelled["status"] == "cancelled"

    reader = _name("reader")
    deploy(api, reader, READER)
    gated = api.post("/runs", data={"payload": json.dumps({"tool": reader, "requires_confirmation": True})},
                     files={"doc": ("doc.txt", b"hello")})
    assert gated.status_code == 201, gated.text
    rows = client.runs.files.list(gated.json()["id"])["items"]
    assert [r["direction"] for r in rows] == ["input"]
    client.runs.files.delete(gated.json()["id"], rows[0]["id"])
    assert client.runs.files.list(gated.json()["id"])["items"] == []
    client.runs.cancel(gated.json()["id"])


def test_errors_carry_status_request_id_envelope(server: Server, client: EigenpalClient, api: httpx.Client) -> None:
    with pytest.raises(EigenpalNotFoundError) as caught:
        client.runs.get("run_00000000000000000000000000")
    err = caught.value
    assert err.status == 404 and err.code == "run_not_found" and err.request_id.startswith("req_")
    assert err.envelope["error"]["request_id"] == err.request_id and isinstance(err, EigenpalError)

    with EigenpalClient(api_key="ry_not_a_key", base_url=server.base_url) as stranger, \
            pytest.raises(EigenpalAuthError) as auth:
        stranger.runs.list()
    assert auth.value.status == 401

    viewer = EigenpalClient(api_key=_key(api, "viewer"), base_url=server.base_url)
    tool = _name("report")
    deploy(api, tool, REPORTER)
    with pytest.raises(EigenpalForbiddenError) as forbidden:
        viewer.run(tool=tool, input={"name": "x"})
    assert forbidden.value.status == 403
    viewer.close()

    with pytest.raises(EigenpalValidationError) as invalid:
        client.run(tool=tool, input={"n": "not a number"})
    assert invalid.value.status == 400 and invalid.value.code == "invalid_inputs"
    # Path tricks in ids reach no other resource.
    with pytest.raises((EigenpalNotFoundError, EigenpalValidationError)):
        client.runs.get("../tools")


def test_agents_source_and_automations_name_the_missing_feature(client: EigenpalClient) -> None:
    for call, feature in ((lambda: client.agents.list(), "agents.list"),
                          (lambda: client.agents.email_triggers.create_alias("a", {}), "agents.email_triggers.create_alias"),
                          (lambda: client.source.lockfile(package_ref="x"), "source.lockfile"),
                          (lambda: client.automations.sync("nightly"), "automations.sync"),
                          (lambda: client.run(agent="helper"), "agents")):
        with pytest.raises(EigenpalNotSupportedError) as caught:
            call()
        assert caught.value.feature == feature and feature.split(".")[0] in str(caught.value)
    assert "sync" in dir(client.automations)


def test_rate_limit_error_has_retry_after(fresh_server: Server) -> None:
    fresh_server.start(wait_ready=False).wait_ready(timeout=180)  # a fresh database: slow on a busy host
    with fresh_server.client() as operator:
        username = _name("limited")
        assert operator.post("/users", json={"username": username, "role": "member"}).status_code == 201
        key = operator.post("/tokens", json={"name": username, "role": "member", "user": username}).json()["key"]
        assert operator.put("/workspace/plan", json={"plan": "custom", "requests_per_minute": 2}).status_code == 200
    with EigenpalClient(api_key=key, base_url=fresh_server.base_url, max_retries=0) as limited, \
            pytest.raises(EigenpalRateLimitError) as caught:
        for _ in range(5):
            limited.runs.list()
    assert caught.value.status == 429 and caught.value.retry_after is not None and caught.value.retry_after >= 1


def test_key_and_base_url_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EIGENPAL_API_KEY", server.admin_key)
    monkeypatch.setenv("EIGENPAL_BASE_URL", server.base_url)
    with EigenpalClient() as made:
        assert made.base_url == server.base_url and "items" in made.runs.list(limit=1)
    monkeypatch.delenv("EIGENPAL_API_KEY")
    with pytest.raises(EigenpalAuthError):
        EigenpalClient(base_url=server.base_url)

"""``client.executions.search`` of the published ``deeporigin`` client (5.4.0), unchanged, over
runyard's run search: the data platform's props grammar, its snake_case rows (one record per
run: ``id`` = ``compute_job_id`` = the run id), select, limit/offset, total count."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deeporigin.exceptions import DeepOriginException
from deeporigin.platform.client import DeepOriginClient

from runyard import Client
from runyard.compat.deeporigin import token_for
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

CODE = '''
def main(x: int, color: str = "red") -> int:
    if x < 0:
        raise ValueError("negative")
    return x
'''


@pytest.fixture(autouse=True)
def scratch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the client saves failed requests' curl commands there


@pytest.fixture
def seeded(server: Server) -> Iterator[tuple[DeepOriginClient, dict[str, list[str]]]]:
    """Two tools, runs of each in a project of the test's own: 3 that succeed, 1 that fails."""
    tag = uuid.uuid4().hex[:8]
    tools = [f"alpha-{tag}", f"beta-{tag}"]
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        for name in tools:
            runyard.tools.deploy(CODE, name=name)
    client = DeepOriginClient(base_url=f"{server.base_url}/compat/deeporigin", token=token_for(server.admin_key),
                              org_key="default", project_id=f"proj-{tag}", max_retries=0, _session=f"s-{tag}")
    runs: dict[str, list[str]] = {name: [] for name in tools}
    for name, x in ((tools[0], 1), (tools[0], 2), (tools[1], 3), (tools[1], -1)):
        made = client.executions.create(tool_key=name, tool_version="latest", data={"inputs": {"x": x}})
        runs[name].append(made["executionId"])
    client.executions.wait([i for ids in runs.values() for i in ids], poll_interval=0.2, timeout=60.0)
    try:
        yield client, runs
    finally:
        client.close()


def test_search_by_project_tool_status_and_compute_job_id(seeded: tuple[DeepOriginClient, dict[str, list[str]]]
                                                          ) -> None:
    client, runs = seeded
    alpha, beta = runs
    project = client.project_id
    found = client.executions.search(project_id=project, with_total_count=True)
    assert found["meta"]["count"] == 4 and len(found["data"]) == 4
    row = next(r for r in found["data"] if r["id"] == runs[alpha][0])
    assert row["compute_job_id"] == row["id"] and row["tool_key"] == alpha and row["tool_version"] == "1"
    assert row["status"] == "Completed" and row["project_id"] == project and row["outputs"] == 1
    assert row["tags"] == {"app": "python-client", "session": client._session}
    assert row["compute_metadata"] == {"userInputs": {"x": 1}} and row["created_at"] and row["completed_at"]

    assert {r["id"] for r in client.executions.search(project_id=project, tool_key=alpha)["data"]} == set(runs[alpha])
    both = client.executions.search(project_id=project, tool_key=[alpha, beta])["data"]
    assert len(both) == 4
    failed = client.executions.search(project_id=project, status="Failed")["data"]
    assert [r["id"] for r in failed] == [runs[beta][1]] and failed[0]["status_reason"]["message"] == "negative"
    assert len(client.executions.search(project_id=project, status="Completed")["data"]) == 3
    assert client.executions.search(project_id=project, status="Quoted")["data"] == []
    [one] = client.executions.search(compute_job_id=runs[beta][0], limit=1)["data"]
    assert one["id"] == runs[beta][0] and one["worker_id"]
    # What wait_for_ingestion asks (runyard has no hidden runs: every run is searched).
    hidden_too = client.executions.search(compute_job_id=runs[beta][0], project_id=project, limit=1,
                                          include_hidden=True)
    assert [r["id"] for r in hidden_too["data"]] == [runs[beta][0]]


def test_search_extra_props_select_and_paging(seeded: tuple[DeepOriginClient, dict[str, list[str]]]) -> None:
    client, runs = seeded
    alpha, _ = runs
    project = client.project_id
    by_app = client.executions.search(project_id=project, extra_props=[
        {"column": "tags.app", "op": "eq", "value": "python-client"},
        {"column": "compute_metadata.userInputs.x", "op": "gte", "value": 2}])
    assert sorted(r["compute_metadata"]["userInputs"]["x"] for r in by_app["data"]) == [2, 3]
    other_app = client.executions.search(project_id=project, extra_props=[
        {"column": "tags.app", "op": "neq", "value": "python-client"}])
    assert other_app["data"] == []
    worker = client.executions.search(compute_job_id=runs[alpha][0])["data"][0]["worker_id"]
    on_worker = client.executions.search(project_id=project, extra_props=[
        {"column": "worker_id", "op": "eq", "value": worker}])
    assert runs[alpha][0] in {r["id"] for r in on_worker["data"]}

    slim = client.executions.search(project_id=project, select=["id", "status"], limit=2, offset=1,
                                    with_total_count=True)
    assert slim["meta"] == {"limit": 2, "offset": 1, "count": 4}
    assert len(slim["data"]) == 2 and all(set(r) == {"id", "status"} for r in slim["data"])
    everything = [r["id"] for r in client.executions.search(project_id=project)["data"]]
    assert [r["id"] for r in slim["data"]] == everything[1:3]  # newest first, as listed


def test_search_refuses_what_it_cannot_answer(seeded: tuple[DeepOriginClient, dict[str, list[str]]]) -> None:
    client, _ = seeded
    refused = [
        ({"extra_props": [{"column": "colour", "op": "eq", "value": "x"}]}, "unknown_search_field", "colour"),
        ({"select": ["id", "nope"]}, "unknown_search_field", "nope"),
        ({"status": "Sleeping"}, "validation_error", "Sleeping"),
        ({"extra_props": [{"column": "tool_key", "op": "like", "value": "x"}]}, None, "like"),
        ({"limit": 10_001}, "invalid_limit", "10000"),
    ]
    for kwargs, code, named in refused:
        with pytest.raises(DeepOriginException) as caught:
            client.executions.search(project_id=client.project_id, **kwargs)
        assert caught.value.http_status == 400, kwargs
        body = caught.value.response_data
        assert code is None or body["code"] == code, body
        assert named in body["message"], body

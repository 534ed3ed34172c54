"""The published ``deeporigin`` client (5.4.0, pinned in the test extra), unchanged, against a
real runyard server at ``/compat/deeporigin``: a tool deployed with runyard's SDK, then run,
listed, searched, waited on, quoted and confirmed, cancelled through ``client.executions``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from deeporigin.exceptions import DeepOriginException
from deeporigin.platform.client import DeepOriginClient
from deeporigin.platform.constants import TERMINAL_STATES

from runyard import Client
from runyard.compat.deeporigin import key_of, token_for
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

ECHO = '''
def main(x: int, label: str = "a") -> dict:
    print("got", x)
    return {"double": 2 * x, "label": label}
'''
SLOW = '''
import time

def main(seconds: float = 30.0) -> str:
    time.sleep(seconds)
    return "slept"
'''

MakeClient = Callable[..., DeepOriginClient]


@pytest.fixture(autouse=True)
def scratch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client saves a curl command of each failed request under ~/.deeporigin."""
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def make_client(server: Server) -> Iterator[MakeClient]:
    made: list[DeepOriginClient] = []

    def make(key: str | None = None, *, org_key: str = "default", project_id: str | None = "proj-a",
             bare: bool = False) -> DeepOriginClient:
        key = key or server.admin_key
        client = DeepOriginClient(base_url=f"{server.base_url}/compat/deeporigin",
                                  token=key if bare else token_for(key), org_key=org_key, project_id=project_id,
                                  max_retries=0, _session=f"s-{uuid.uuid4().hex[:8]}")
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def echo_tool(server: Server) -> str:
    """A tool deployed through runyard's own SDK."""
    name = f"echo-{uuid.uuid4().hex[:8]}"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        runyard.tools.deploy(ECHO, name=name)
    return name


def test_the_token_carries_the_key_and_nothing_else_passes_for_it() -> None:
    token = token_for("ry_secret")
    assert key_of(token) == "ry_secret"
    header, payload, signature = token.split(".")
    assert key_of(f"{header}.{payload}.{signature[:-2]}xx") is None  # tampered signature
    assert key_of(token_for("ry_other").split(".")[0] + f".{payload}.{signature}") == "ry_secret"
    forged = token_for("ry_other")
    assert key_of(f"{forged.split('.')[0]}.{payload}.{forged.split('.')[2]}") is None  # another key's signature
    assert key_of("ry_secret") is None and key_of("a.b.c") is None and key_of("x" * 5000) is None


def test_a_tool_deployed_with_the_sdk_runs_through_the_client(make_client: MakeClient, echo_tool: str,
                                                              server: Server) -> None:
    client = make_client()
    assert client.executions is not None
    created = client.executions.create(tool_key=echo_tool, tool_version="latest", data={"inputs": {"x": 21}})
    run_id = created["executionId"]
    assert run_id.startswith("run_") and created["status"] in {"Queued", "Running", "Completed"}
    assert created["tool"] == {"key": echo_tool, "version": "1", "id": created["tool"]["id"]}
    assert created["projectId"] == "proj-a" and created["app"] == "python-client"
    assert created["session"] == client._session and created["clusterId"] == "runyard"

    [done] = client.executions.wait([run_id], poll_interval=0.2, timeout=60.0)
    assert done["status"] == "Completed" and done["status"] in TERMINAL_STATES
    assert done["jobOutputs"] == {"double": 42, "label": "a"}
    assert done["userInputs"] == {"x": 21}  # as given (the defaults are the tool's)
    assert done["startedAt"] and done["completedAt"] and done["runyardStatus"] == "succeeded"
    assert client.executions.get(run_id)["executionId"] == run_id

    # The same record in runyard's own API.
    with Client(api_key=server.admin_key, base_url=server.base_url) as ry:
        run = ry.runs.get(run_id)
        assert run.status == "succeeded" and run.tags["project"] == "proj-a" and run.tags["app"] == "python-client"

    # from_data_platform: the same run, as the data platform's row.
    row = client.executions.from_data_platform(run_id)["data"]
    assert row["id"] == row["compute_job_id"] == run_id
    assert row["tool_key"] == echo_tool and row["status"] == "Completed" and row["project_id"] == "proj-a"
    assert row["compute_metadata"]["userInputs"] == {"x": 21}


def test_a_specific_version_runs_and_an_unknown_one_is_refused(make_client: MakeClient, echo_tool: str,
                                                               server: Server) -> None:
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        runyard.tools.update(echo_tool, code=ECHO.replace("2 * x", "3 * x"))
    client = make_client()
    first = client.executions.create(tool_key=echo_tool, tool_version="1", data={"inputs": {"x": 1}})
    second = client.executions.create(tool_key=echo_tool, tool_version="latest", data={"inputs": {"x": 1}})
    one, two = client.executions.wait([first["executionId"], second["executionId"]], poll_interval=0.2, timeout=60.0)
    assert (one["tool"]["version"], one["jobOutputs"]["double"]) == ("1", 2)
    assert (two["tool"]["version"], two["jobOutputs"]["double"]) == ("2", 3)
    for version, status, code in (("9", 404, "version_not_found"), ("v1", 400, "validation_error")):
        with pytest.raises(DeepOriginException) as caught:
            client.executions.create(tool_key=echo_tool, tool_version=version, data={"inputs": {"x": 1}})
        assert caught.value.http_status == status and caught.value.response_data["code"] == code
    with pytest.raises(DeepOriginException) as caught:
        client.executions.create(tool_key=f"missing-{uuid.uuid4().hex[:6]}", tool_version="latest", data={})
    assert caught.value.http_status == 404 and caught.value.response_data["code"] == "tool_not_found"


def test_bad_inputs_are_refused_before_any_run(make_client: MakeClient, echo_tool: str) -> None:
    client = make_client()
    with pytest.raises(DeepOriginException) as caught:
        client.executions.create(tool_key=echo_tool, tool_version="latest", data={"inputs": {"x": "nope"}})
    assert caught.value.http_status == 400 and caught.value.response_data["code"] == "invalid_inputs"
    assert "x" in caught.value.response_data["message"]
    assert client.executions.list(tool_key=echo_tool)["count"] == 0


def test_a_quote_waits_for_confirm(make_client: MakeClient, echo_tool: str) -> None:
    client = make_client()
    quoted = client.executions.create(tool_key=echo_tool, tool_version="latest",
                                      data={"inputs": {"x": 5}, "approveAmount": -1})
    run_id = quoted["executionId"]
    assert quoted["status"] == "Quoted" and quoted["runyardStatus"] == "awaiting_confirmation"
    # Quoted is terminal to the client: wait returns it as it stands.
    assert client.executions.wait(run_id, poll_interval=0.1, timeout=10.0)[0]["status"] == "Quoted"
    confirmed = client.executions.confirm(run_id)
    assert confirmed["executionId"] == run_id and confirmed["status"] in {"Queued", "Running", "Completed"}
    assert client.executions.wait(run_id, poll_interval=0.2, timeout=60.0)[0]["jobOutputs"]["double"] == 10
    with pytest.raises(DeepOriginException) as caught:  # confirmed already
        client.executions.confirm(run_id)
    assert caught.value.http_status == 409 and caught.value.response_data["code"] == "invalid_state"


def test_cancel_stops_a_running_execution(make_client: MakeClient, server: Server) -> None:
    name = f"slow-{uuid.uuid4().hex[:8]}"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        runyard.tools.deploy(SLOW, name=name)
    client = make_client()
    run_id = client.executions.create(tool_key=name, tool_version="latest",
                                      data={"inputs": {"seconds": 60}})["executionId"]
    assert client.executions.cancel(run_id) is None
    [done] = client.executions.wait(run_id, poll_interval=0.2, timeout=60.0)
    assert done["status"] == "Cancelled"
    assert client.executions.cancel(run_id) is None  # terminal already: returns early, as documented


def test_wait_times_out_and_checks_its_arguments(make_client: MakeClient, server: Server) -> None:
    name = f"slow-{uuid.uuid4().hex[:8]}"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        runyard.tools.deploy(SLOW, name=name)
    client = make_client()
    run_id = client.executions.create(tool_key=name, tool_version="latest",
                                      data={"inputs": {"seconds": 60}})["executionId"]
    try:
        with pytest.raises(TimeoutError):
            client.executions.wait(run_id, poll_interval=0.1, timeout=0.5)
        with pytest.raises(ValueError):
            client.executions.wait([], poll_interval=1.0)
    finally:
        client.executions.cancel(run_id)


def test_list_pages_filters_and_fetches_all_pages(make_client: MakeClient, echo_tool: str) -> None:
    client = make_client(project_id=f"p-{uuid.uuid4().hex[:6]}")
    ids = [client.executions.create(tool_key=echo_tool, tool_version="latest", data={"inputs": {"x": i}})
           ["executionId"] for i in range(5)]
    client.executions.wait(ids, poll_interval=0.2, timeout=60.0)

    first = client.executions.list(tool_key=echo_tool, page=0, page_size=2)
    assert first["count"] == 5 and [d["executionId"] for d in first["data"]] == ids[::-1][:2]
    assert first["data"][0]["userInputs"] == {"x": 4} and first["data"][0]["jobOutputs"]["double"] == 8
    third = client.executions.list(tool_key=echo_tool, page=2, page_size=2)
    assert [d["executionId"] for d in third["data"]] == [ids[0]]
    everything = client.executions.list(tool_key=echo_tool, page_size=2, fetch_all_pages=True)
    assert [d["executionId"] for d in everything["data"]] == ids[::-1] and everything["count"] == 5
    oldest_first = client.executions.list(tool_key=echo_tool, order="createdAt? asc")
    assert [d["executionId"] for d in oldest_first["data"]] == ids

    assert client.executions.list(session=client._session)["count"] == 5
    assert client.executions.list(session="nobody's")["count"] == 0
    assert client.executions.list(project_id=client.project_id)["count"] == 5
    created_second = client.executions.get(ids[1])["createdAt"]
    assert [d["executionId"] for d in client.executions.list(tool_key=echo_tool,
                                                             created_after=created_second)["data"]] == ids[:1:-1]


def test_list_pages_past_runyards_thousand(make_client: MakeClient, server: Server) -> None:
    """A DeepOrigin page of up to 10,000 runs is gathered from runyard pages of 1,000."""
    name = f"many-{uuid.uuid4().hex[:8]}"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        runyard.tools.deploy(ECHO, name=name)
    client = make_client()
    with httpx.Client(base_url=server.api, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=60) as http:
        for i in range(1100):
            made = http.post("/runs", json={"tool": name, "inputs": {"x": i}, "requires_confirmation": True})
            assert made.status_code == 201, made.text
    page = client.executions.list(tool_key=name, page_size=1050)
    assert page["count"] == 1100 and len(page["data"]) == 1050
    assert len({d["executionId"] for d in page["data"]}) == 1050
    assert len(client.executions.list(tool_key=name, page=1, page_size=1050)["data"]) == 50
    assert len(client.executions.list(tool_key=name, fetch_all_pages=True)["data"]) == 1100
    with pytest.raises(DeepOriginException) as caught:
        client.executions.list(page_size=10_001)
    assert caught.value.http_status == 400 and caught.value.response_data["code"] == "invalid_limit"

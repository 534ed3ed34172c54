"""What ``/compat/deeporigin`` refuses, through the published ``deeporigin`` client (5.4.0)
unchanged where it can send it and raw HTTP where it cannot: keys of another workspace, unknown
organizations, keys without the role or restricted to other tools, paths that try to reach
elsewhere, pages over DeepOrigin's 10,000, and features runyard does not have (501 naming them)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from deeporigin.exceptions import DeepOriginException
from deeporigin.platform.client import DeepOriginClient

from runyard import Client
from runyard.compat.deeporigin import token_for
from runyard.services.tokens import hash_key
from runyard.store.db import Database
from runyard.store.tables import tokens, workspaces
from tests.compat.datagen_support import other_workspace_key
from tests.support.servers import Server

pytestmark = pytest.mark.timeout(120)

CODE = '''
def main(x: int) -> int:
    return x
'''
MakeClient = Callable[..., DeepOriginClient]


@pytest.fixture(autouse=True)
def scratch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the client saves failed requests' curl commands there


@pytest.fixture
def make_client(server: Server) -> Iterator[MakeClient]:
    made: list[DeepOriginClient] = []

    def make(key: str | None = None, org_key: str = "default") -> DeepOriginClient:
        client = DeepOriginClient(base_url=f"{server.base_url}/compat/deeporigin", token=token_for(key or server.admin_key),
                                  org_key=org_key, project_id="p", max_retries=0,
                                  _session=f"s-{uuid.uuid4().hex[:8]}")
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def tool_and_run(server: Server) -> tuple[str, str]:
    """A tool of the default workspace and a run of it (awaiting confirmation: it stays put)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        runyard.tools.deploy(CODE, name=name)
        run = runyard.runs.create(name, {"x": 1}, requires_confirmation=True)
    return name, run.id


def refusal(call: Callable[[], object]) -> DeepOriginException:
    with pytest.raises(DeepOriginException) as caught:
        call()
    return caught.value


def workspace_of(server: Server, key: str) -> str:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'runyard.db'}")
    try:
        with db.read() as conn:
            return conn.execute(sa.select(workspaces.c.name).join(tokens, tokens.c.workspace_id == workspaces.c.id)
                                .where(tokens.c.key_hash == hash_key(key))).scalar_one()
    finally:
        db.engine.dispose()


def runs_of(server: Server, tool: str) -> int:
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        return len(runyard.runs.list(tool=tool).items)


def test_an_unknown_organization_is_404_and_changes_nothing(make_client: MakeClient, server: Server,
                                                            tool_and_run: tuple[str, str]) -> None:
    tool, run_id = tool_and_run
    client = make_client(org_key="acme")
    calls = [lambda: client.executions.list(), lambda: client.executions.get(run_id),
             lambda: client.executions.search(), lambda: client.executions.confirm(run_id),
             lambda: client.executions.create(tool_key=tool, tool_version="latest", data={"inputs": {"x": 2}})]
    for call in calls:
        caught = refusal(call)
        assert caught.http_status == 404 and caught.response_data["code"] == "organization_not_found"
    assert runs_of(server, tool) == 1


def test_a_key_of_another_workspace_never_reaches_this_ones_runs(make_client: MakeClient, server: Server,
                                                                 tool_and_run: tuple[str, str]) -> None:
    tool, run_id = tool_and_run
    other_key = other_workspace_key(server)
    # Naming this workspace: not its organization.
    caught = refusal(lambda: make_client(other_key, "default").executions.get(run_id))
    assert caught.http_status == 404 and caught.response_data["code"] == "organization_not_found"
    # In its own organization: this workspace's runs and tools do not exist.
    own = make_client(other_key, workspace_of(server, other_key))
    caught = refusal(lambda: own.executions.get(run_id))
    assert caught.http_status == 404 and caught.response_data["code"] == "run_not_found"
    for call in (lambda: own.executions.confirm(run_id), lambda: own.executions.cancel(run_id)):
        assert refusal(call).http_status == 404
    assert own.executions.list(fetch_all_pages=True)["count"] == 0
    assert own.executions.search(compute_job_id=run_id)["data"] == []
    caught = refusal(lambda: own.executions.create(tool_key=tool, tool_version="latest", data={"inputs": {"x": 1}}))
    assert caught.http_status == 404 and caught.response_data["code"] == "tool_not_found"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        assert runyard.runs.get(run_id).status == "awaiting_confirmation"


def test_bad_and_weak_keys_are_refused(make_client: MakeClient, server: Server,
                                       tool_and_run: tuple[str, str]) -> None:
    tool, run_id = tool_and_run
    caught = refusal(lambda: make_client("ry_not_a_key").executions.list())
    assert caught.http_status == 401 and caught.response_data["code"] == "invalid_api_key"
    with httpx.Client(base_url=f"{server.base_url}/compat/deeporigin") as http:
        assert http.get("/tools/default/tools/executions").status_code == 401
        # A JWT not made by token_for (its signature is not the key's) is no key.
        forged = token_for("ry_other").rsplit(".", 1)[0] + "." + token_for(server.admin_key).rsplit(".", 1)[1]
        assert http.get("/tools/default/tools/executions",
                        headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        # A bare key works too (curl), and the wrapped one only here: not on runyard's own API.
        assert http.get("/tools/default/tools/executions",
                        headers={"Authorization": f"Bearer {server.admin_key}"}).status_code == 200
        assert http.get(f"{server.api}/runs", headers={
            "Authorization": f"Bearer {token_for(server.admin_key)}"}).status_code == 401

    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        viewer = runyard.tokens.create(name="viewer", role="viewer").key
        other_tool = f"o-{uuid.uuid4().hex[:8]}"
        other = runyard.tools.deploy(CODE, name=other_tool)
        restricted = runyard.tokens.create(name="r", role="member", tools=[other.id]).key
    watcher = make_client(viewer)
    assert watcher.executions.get(run_id)["executionId"] == run_id  # a viewer reads
    for call in (lambda: watcher.executions.create(tool_key=tool, tool_version="latest", data={"inputs": {"x": 1}}),
                 lambda: watcher.executions.confirm(run_id)):
        caught = refusal(call)
        assert caught.http_status == 403 and caught.response_data["code"] == "insufficient_role"
    # (The client's cancel of a quoted run returns early, as it does for every state it holds terminal.)
    with httpx.Client(base_url=f"{server.base_url}/compat/deeporigin") as http:
        answer = http.patch(f"/tools/default/tools/executions/{run_id}:cancel",
                            headers={"Authorization": f"Bearer {token_for(viewer)}"})
        assert answer.status_code == 403 and answer.json()["code"] == "insufficient_role"
    narrow = make_client(restricted)
    assert refusal(lambda: narrow.executions.get(run_id)).response_data["code"] == "run_not_found"
    assert narrow.executions.list(tool_key=tool)["count"] == 0
    assert narrow.executions.search(compute_job_id=run_id)["data"] == []
    assert runs_of(server, tool) == 1


def test_paths_that_reach_elsewhere_are_refused(make_client: MakeClient, server: Server,
                                                tool_and_run: tuple[str, str]) -> None:
    tool, run_id = tool_and_run
    client = make_client()
    for bad_id in (f"{run_id}%2F..", f"..%2F{run_id}", f"{run_id}/x", f"../executions/{run_id}x"):
        caught = refusal(lambda bad_id=bad_id: client.executions.get(bad_id))
        assert caught.http_status in (400, 404), (bad_id, caught.response_data)
    # The client's HTTP library resolves ".." before sending: the server sees the tools list
    # path, a DeepOrigin feature runyard does not serve (never a run, nor any other resource).
    caught = refusal(lambda: client.executions.get(".."))
    assert caught.http_status == 501 and caught.response_data["code"] == "not_implemented"
    # Dot segments that climb out of the prefix land on runyard's own API, where the wrapped key is no key.
    caught = refusal(lambda: client.executions.get("../../../../../../api/v1/runs"))
    assert caught.http_status == 401 and caught.response_data["error"]["code"] == "invalid_api_key"
    assert refusal(lambda: client.executions.get("../../../../../api/v1/runs")).http_status == 404  # /compat/api/…
    caught = refusal(lambda: client.executions.create(tool_key=f"..%2F{tool}", tool_version="latest",
                                                      data={"inputs": {"x": 1}}))
    assert caught.http_status in (400, 404)
    traversing = make_client(org_key="../default")
    assert refusal(lambda: traversing.executions.list()).http_status == 404
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        assert runyard.runs.get(run_id).status == "awaiting_confirmation"
    assert runs_of(server, tool) == 1


def test_pages_and_bodies_past_the_limits(make_client: MakeClient, server: Server,
                                          tool_and_run: tuple[str, str]) -> None:
    client = make_client()
    for call in (lambda: client.executions.list(page_size=10_001), lambda: client.executions.search(limit=10_001),
                 lambda: client.executions.list(page_size=0)):
        caught = refusal(call)
        assert caught.http_status == 400 and caught.response_data["code"] == "invalid_limit"
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=f"{server.base_url}/compat/deeporigin", headers=headers) as http:
        for params, named in (({"filter": '{"colour": "red"}'}, "colour"), ({"filter": "[1]"}, "filter"),
                              ({"order": "colour? asc"}, "order"), ({"filter": '{"status": "Sleeping"}'}, "Sleeping"),
                              ({"filter": '{"createdAt": {"$gt": "yesterday"}}'}, "createdAt")):
            answer = http.get("/tools/default/tools/executions", params=params)
            assert answer.status_code == 400 and named in answer.json()["message"], answer.text
        answer = http.post(f"/tools/default/tools/{tool_and_run[0]}/latest/executions",
                           json={"inputs": {"x": 1}, "surprise": True})
        assert answer.status_code == 400 and "surprise" in answer.text
        answer = http.post(f"/tools/default/tools/{tool_and_run[0]}/latest/executions",
                           json={"inputs": {"x": 1}, "clusterId": "elsewhere"})
        assert answer.status_code == 404 and answer.json()["code"] == "cluster_not_found"
        answer = http.post("/data-platform/default/executions/search", content=b"{" * 100 + b"}" * 100,
                           headers={"Content-Type": "application/json"})
        assert answer.status_code == 400
    assert runs_of(server, tool_and_run[0]) == 1


def test_features_runyard_does_not_have_answer_501_naming_them(make_client: MakeClient, server: Server,
                                                              tool_and_run: tuple[str, str]) -> None:
    tool = tool_and_run[0]
    client = make_client()
    for data, feature in (({"inputs": {"x": 1}, "name": "nightly"}, "execution names"),
                          ({"inputs": {"x": 1}, "outputs": {"file": "s3://x"}}, "outputs"),
                          ({"inputs": {"x": 1}, "tag": "team-a"}, "billing tags")):
        caught = refusal(lambda data=data: client.executions.create(tool_key=tool, tool_version="latest", data=data))
        assert caught.http_status == 501 and caught.response_data["code"] == "not_implemented"
        assert feature in caught.response_data["message"]
    caught = refusal(lambda: client.executions.create(tool_key=tool, tool_version="latest", data={"inputs": {"x": 1}},
                                                      visibility="hidden"))
    assert caught.http_status == 501 and "hidden" in caught.response_data["message"]
    assert client.organizations is not None
    caught = refusal(lambda: client.organizations.users())
    assert caught.http_status == 501 and "/entities/{org}/organizations/users" in caught.response_data["message"]
    assert runs_of(server, tool) == 1


def test_every_route_refuses_a_request_without_a_key(server: Server, tool_and_run: tuple[str, str]) -> None:
    tool, run_id = tool_and_run
    routes = [("GET", "/tools/default/clusters"), ("GET", "/tools/default/tools/executions"),
              ("GET", f"/tools/default/tools/executions/{run_id}"),
              ("PATCH", f"/tools/default/tools/executions/{run_id}:cancel"),
              ("PATCH", f"/tools/default/tools/executions/{run_id}:confirm"),
              ("POST", f"/tools/default/tools/{tool}/latest/executions"),
              ("POST", "/data-platform/default/executions/search"),
              ("GET", f"/data-platform/default/executions/{run_id}"), ("GET", "/files/default/signedUrl/x")]
    with httpx.Client(base_url=f"{server.base_url}/compat/deeporigin") as http:
        for method, path in routes:
            answer = http.request(method, path, json={"inputs": {"x": 1}} if method == "POST" else None)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "missing_api_key"
    with Client(api_key=server.admin_key, base_url=server.base_url) as runyard:
        assert runyard.runs.get(run_id).status == "awaiting_confirmation"
    assert runs_of(server, tool) == 1

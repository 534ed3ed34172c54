"""Tool visibility: a private tool is its owner's and the admins'; a public one every user
of the workspace sees and (role permitting) runs, restricted keys included when their
restriction names it. Only its owner or an admin changes a tool."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import deploy, error_code, run
from tests.support.servers import Server

CODE = "def main(x: int = 1):\n    return x\n"


@dataclass
class People:
    admin: httpx.Client
    alice: httpx.Client  # the tools' owner (a member)
    bob: httpx.Client  # another member
    bob_viewer: httpx.Client
    bob_name: str
    clients: list[httpx.Client]

    def bob_restricted(self, server: Server, tools: list[str]) -> httpx.Client:
        """A member key of bob's restricted to ``tools``."""
        client = server.client(_key(self.admin, self.bob_name, "member", {"tools": tools}))
        self.clients.append(client)
        return client


def _key(admin: httpx.Client, user: str, role: str, restrictions: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"name": f"{user}-{role}", "role": role, "user": user}
    if restrictions:
        body["restrictions"] = restrictions
    made = admin.post("/tokens", json=body)
    assert made.status_code == 201, made.text
    return made.json()["key"]


@pytest.fixture
def people(server: Server, api: httpx.Client, unique: str) -> Iterator[People]:
    names = {}
    for who in ("alice", "bob"):
        names[who] = f"{who}-{unique}"
        assert api.post("/users", json={"username": names[who], "role": "member"}).status_code == 201
    alice = server.client(_key(api, names["alice"], "member"))
    bob = server.client(_key(api, names["bob"], "member"))
    viewer = server.client(_key(api, names["bob"], "viewer"))
    found = People(api, alice, bob, viewer, names["bob"], [alice, bob, viewer])
    try:
        yield found
    finally:
        for client in found.clients:
            client.close()


def _listed(client: httpx.Client, name: str) -> bool:
    return name in [t["name"] for t in client.get("/tools", params={"search": name, "limit": 1000}).json()["items"]]


def _hidden(response: httpx.Response) -> bool:
    return response.status_code == 404 and error_code(response) == "tool_not_found"


def test_a_private_tool_is_its_owners_and_the_admins(server: Server, people: People, unique: str) -> None:
    name = f"private-{unique}"
    tool = deploy(people.alice, name, CODE)
    assert tool["visibility"] == "private" and tool["owner_id"], tool
    for owner_side in (people.alice, people.admin):
        assert owner_side.get(f"/tools/{name}").status_code == 200
        assert _listed(owner_side, name)
        assert run(owner_side, name, {"x": 2})["output"] == 2
    bob_only = people.bob_restricted(server, [name])
    for other in (people.bob, people.bob_viewer, bob_only):
        assert not _listed(other, name)
        for response in (other.get(f"/tools/{name}"), other.get(f"/tools/{tool['id']}"),
                         other.get(f"/tools/{name}/versions"), other.get(f"/tools/{name}/versions/1")):
            assert _hidden(response), response.text
    for other in (people.bob, bob_only):
        for response in (other.post("/runs", json={"tool": name}), other.post("/runs", json={"tool": tool["id"]}),
                         other.patch(f"/tools/{name}", json={"description": "mine now"}),
                         other.delete(f"/tools/{name}")):
            assert _hidden(response), response.text
    # its name is taken: another user deploying it is told so, and changes nothing
    taken = people.bob.post("/tools", json={"name": name, "code": "def main():\n    return 'bob'\n"})
    assert taken.status_code == 409 and error_code(taken) == "tool_exists", taken.text
    renamed = deploy(people.bob, f"bobs-{unique}", CODE)
    onto = people.bob.patch(f"/tools/{renamed['name']}", json={"name": name})
    assert onto.status_code == 409 and error_code(onto) == "tool_exists", onto.text
    # nor can a trigger of another user reach it
    schedule = people.bob.post("/schedules", json={"tool": name, "interval_s": 60})
    assert schedule.status_code == 400 and error_code(schedule) == "invalid_target", schedule.text
    assert people.alice.get(f"/tools/{name}").json()["version"] == 1


def test_a_public_tool_is_seen_and_run_by_every_user_but_changed_by_its_owner(
        server: Server, people: People, unique: str) -> None:
    name = f"public-{unique}"
    tool = deploy(people.alice, name, CODE, visibility="public")
    bob_only = people.bob_restricted(server, [name])
    bob_elsewhere = people.bob_restricted(server, [deploy(people.bob, f"bob-own-{unique}", CODE)["name"]])
    for other in (people.bob, people.bob_viewer, bob_only):
        assert other.get(f"/tools/{name}").status_code == 200
        assert _listed(other, name)
    for runner in (people.bob, bob_only):
        assert run(runner, name, {"x": 3})["output"] == 3
    viewer_run = people.bob_viewer.post("/runs", json={"tool": name})
    assert viewer_run.status_code == 403 and error_code(viewer_run) == "insufficient_role", viewer_run.text
    # a restricted key whose restriction does not name it does not see it
    assert not _listed(bob_elsewhere, name)
    assert _hidden(bob_elsewhere.get(f"/tools/{name}")) and _hidden(bob_elsewhere.post("/runs", json={"tool": name}))
    # changing it takes its owner or an admin
    for response in (people.bob.patch(f"/tools/{name}", json={"description": "bob was here"}),
                     people.bob.patch(f"/tools/{name}", json={"name": f"bobs-now-{unique}"}),
                     people.bob.delete(f"/tools/{name}"),
                     people.bob.post("/tools", json={"name": name, "code": "def main():\n    return 'bob'\n"})):
        assert response.status_code == 403 and error_code(response) == "not_tool_owner", response.text
    assert people.alice.get(f"/tools/{name}").json()["version"] == 1
    assert people.admin.patch(f"/tools/{name}", json={"description": "by an admin"}).status_code == 200
    # a new version by its owner, without a visibility: it stays public
    again = deploy(people.alice, name, "def main(x: int = 1):\n    return x * 10\n")
    assert again["visibility"] == "public" and again["version"] == 2, again
    assert run(people.bob, name, {"x": 2})["output"] == 20
    # made private again by its owner: hidden from the others at once, runs included
    assert people.alice.patch(f"/tools/{name}", json={"visibility": "private"}).json()["visibility"] == "private"
    assert _hidden(people.bob.get(f"/tools/{name}"))
    assert _hidden(people.bob.post("/runs", json={"tool": name}))  # though bob's node had it cached
    assert _hidden(people.bob.post("/runs", json={"tool": tool["id"]}))
    assert run(people.alice, name)["status"] == "succeeded"


def test_the_runs_of_a_private_tool_are_hidden_like_the_tool(server: Server, people: People, unique: str) -> None:
    name = f"private-runs-{unique}"
    deploy(people.alice, name, CODE, visibility="public")
    bobs = run(people.bob, name, {"x": 4})
    assert people.alice.patch(f"/tools/{name}", json={"visibility": "private"}).status_code == 200
    alices = run(people.alice, name, {"x": 5})

    def listed(client: httpx.Client) -> set[str]:
        return {r["id"] for r in client.get("/runs", params={"tool": name, "limit": 1000}).json()["items"]}

    def searched(client: httpx.Client) -> set[str]:
        found = client.post("/runs/search", json={"props": [{"field": "tool_name", "op": "eq", "value": name}],
                                                  "with_total_count": True})
        assert found.status_code == 200, found.text
        assert found.json()["total"] == len(found.json()["items"])
        return {r["id"] for r in found.json()["items"]}

    for owner_side in (people.alice, people.admin):
        assert owner_side.get(f"/runs/{bobs['id']}").status_code == 200
        assert listed(owner_side) == searched(owner_side) == {bobs["id"], alices["id"]}
    # bob still sees the run he started; alice's is hidden from him and his viewer key, as
    # a run that does not exist is, on every read
    for other in (people.bob, people.bob_viewer):
        assert listed(other) == searched(other) == {bobs["id"]}
        assert other.get(f"/runs/{bobs['id']}").status_code == 200
        for response in (other.get(f"/runs/{alices['id']}"), other.get(f"/runs/{alices['id']}/logs"),
                         other.get(f"/runs/{alices['id']}/artifacts"),
                         other.post("/runs/wait", json={"ids": [alices["id"], bobs["id"]], "timeout": 0})):
            assert response.status_code == 404 and error_code(response) == "run_not_found", response.text
        assert other.post("/runs/wait", json={"ids": [bobs["id"]], "timeout": 0}).status_code == 200
    assert people.bob.post(f"/runs/{alices['id']}/rerun").status_code == 404
    # public again: every user sees every run of it
    assert people.alice.patch(f"/tools/{name}", json={"visibility": "public"}).status_code == 200
    assert listed(people.bob) == {bobs["id"], alices["id"]}

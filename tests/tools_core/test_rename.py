"""Renaming a tool keeps its id; the old name answers 404 at once on every node, although
run creation reads tools from a per-node cache (services.tools.resolve_recent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard.config import Settings
from runyard.services.access import Principal
from runyard.services.errors import NotFound
from runyard.wiring import Platform
from tests.support.api import deploy, error_code, run
from tests.support.servers import PgDatabase, Server

CODE = "def main(x: int = 1):\n    return x\n"


def test_a_rename_keeps_the_id_and_frees_the_old_name(api: httpx.Client, unique: str) -> None:
    old, new = f"before-{unique}", f"after-{unique}"
    tool = deploy(api, old, CODE)
    assert run(api, old, {"x": 2})["output"] == 2  # the old name is in this node's cache now
    renamed = api.patch(f"/tools/{old}", json={"name": new})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["id"] == tool["id"] and renamed.json()["name"] == new
    assert renamed.json()["version"] == tool["version"]  # a rename is not a new version
    for response in (api.get(f"/tools/{old}"), api.post("/runs", json={"tool": old}),
                     api.patch(f"/tools/{old}", json={"description": "x"})):
        assert response.status_code == 404 and error_code(response) == "tool_not_found", response.text
    done = run(api, new, {"x": 3})
    assert done["output"] == 3 and done["tool_name"] == new and done["tool_id"] == tool["id"], done
    assert api.get(f"/tools/{tool['id']}").json()["name"] == new
    # the old name is free for another tool
    other = deploy(api, old, "def main():\n    return 'other'\n")
    assert other["id"] != tool["id"]
    assert run(api, old)["output"] == "other"
    # renaming onto a live name: 409 tool_exists, nothing changes
    taken = api.patch(f"/tools/{new}", json={"name": old})
    assert taken.status_code == 409 and error_code(taken) == "tool_exists", taken.text
    assert api.get(f"/tools/{tool['id']}").json()["name"] == new
    # a bad name: 400 invalid_tool_name
    for bad in ("Has Spaces", "tool_looks_like_an_id", "x" * 65, ""):
        refused = api.patch(f"/tools/{new}", json={"name": bad})
        assert refused.status_code == 400 and error_code(refused) == "invalid_tool_name", (bad, refused.text)
    # renaming to its own name changes nothing
    same = api.patch(f"/tools/{new}", json={"name": new})
    assert same.status_code == 200 and same.json()["updated_at"] == renamed.json()["updated_at"], same.text


def test_a_rename_with_a_new_version_in_one_request(api: httpx.Client, unique: str) -> None:
    name = f"both-{unique}"
    deploy(api, name, CODE)
    changed = api.patch(f"/tools/{name}", json={"name": f"{name}-2", "code": "def main():\n    return 9\n"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["name"] == f"{name}-2"
    assert run(api, f"{name}-2")["output"] == 9


# -- several nodes ------------------------------------------------------------------------
@pytest.fixture
def platforms(backend: str, tmp_path: Path) -> Iterator[tuple[Platform, Platform]]:
    """Two nodes' services on one database (an SQLite file works for in-process nodes)."""
    pg = PgDatabase.create() if backend == "postgres" else None
    url = pg.url if pg else f"sqlite:///{tmp_path / 'shared.db'}"
    a = Platform(Settings(data_dir=tmp_path / "a", database_url=url))
    b = Platform(Settings(data_dir=tmp_path / "b", database_url=url))
    try:
        yield a, b
    finally:
        b.close()
        a.close()
        if pg:
            pg.drop()


def test_a_node_with_the_old_name_cached_answers_404_after_a_rename_elsewhere(
        platforms: tuple[Platform, Platform]) -> None:
    a, b = platforms
    ws = a.workspace_id
    admin = Principal(token_id="tok_test", workspace_id=ws, role="admin")
    a.tools.deploy(ws, name="first", code=CODE)
    made, _ = b.runs.create(admin, tool="first", inputs={"x": 1})  # b caches name "first"
    a.tools.update(ws, "first", name="second")
    with pytest.raises(NotFound) as gone:
        b.runs.create(admin, tool="first")
    assert gone.value.code == "tool_not_found"
    renamed, _ = b.runs.create(admin, tool="second")
    assert renamed["tool_id"] == made["tool_id"] and renamed["tool_name"] == "second"
    # the old name taken by another tool elsewhere: b runs that one, never the renamed tool
    b.runs.create(admin, tool="second")
    a.tools.update(ws, "second", name="third")
    other, _ = a.tools.deploy(ws, name="second", code="def main():\n    return 0\n")
    run_of_new, _ = b.runs.create(admin, tool="second")
    assert run_of_new["tool_id"] == other["id"] != made["tool_id"]


@pytest.fixture
def two_api_nodes(backend: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two API nodes (each with its own worker) on one PostgreSQL database."""
    if backend != "postgres":
        pytest.skip("two server processes share one database only on PostgreSQL (an SQLite file belongs to "
                    "one node); CI sets RUNYARD_TEST_DATABASE_URL so this runs there")
    pg = PgDatabase.create()
    first = Server(data_dir=tmp_path / "data", database_url=pg.url, slots=2)
    second = Server(data_dir=first.data_dir, database_url=pg.url, admin_key=first.admin_key, slots=2)
    try:
        for node in (first, second):  # (a loaded CI host may take a while to migrate and start)
            node.start(wait_ready=False).wait_ready(timeout=180)
        yield first, second
    finally:
        second.stop()
        first.stop()
        pg.drop()


def test_the_old_name_answers_404_on_every_api_node_at_once(two_api_nodes: tuple[Server, Server],
                                                             unique: str) -> None:
    first, second = two_api_nodes
    old, new = f"n-{unique}", f"m-{unique}"
    with first.client() as api_a, second.client() as api_b:
        tool = deploy(api_a, old, CODE)
        for api in (api_a, api_b):  # both nodes' fast paths have the old name cached
            assert run(api, old, {"x": 5})["output"] == 5
        assert api_a.patch(f"/tools/{old}", json={"name": new}).status_code == 200
        for api in (api_b, api_a):
            gone = api.post("/runs", json={"tool": old})
            assert gone.status_code == 404 and error_code(gone) == "tool_not_found", gone.text
            assert api.get(f"/tools/{old}").status_code == 404
            done = run(api, new, {"x": 6})
            assert done["output"] == 6 and done["tool_id"] == tool["id"], done

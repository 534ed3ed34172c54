"""client.runs.list's new filters and numbered pages, client.runs.search, and the CLI's
``runyard runs list`` flags and ``runyard runs search``, against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from runyard.cli.main import app
from runyard.sdk import Client
from runyard.sdk.errors import APIStatusError
from runyard.sdk.models import RunSearchResult
from tests.support.servers import Server

ECHO = "def main(n: int = 0, word: str = ''):\n    return n\n"


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(api_key=server.admin_key, base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def made(client: Client, unique: str) -> dict[str, Any]:
    tools = [f"sdks-a-{unique}", f"sdks-b-{unique}"]
    for tool in tools:
        client.tools.deploy(name=tool, code=ECHO)
    runs = [client.runs.create(tools[i % 2], {"n": i, "word": f"w{i}"}, wait=30,
                               tags={"session": f"sdk-{unique}", "project": f"pj{i % 2}-{unique}",
                                     "app": "nb", "source_ref": f"ref-{i}", "example_id": f"ex{i}-{unique}"})
            for i in range(5)]
    assert all(r.status == "succeeded" for r in runs)
    return {"tools": tools, "ids": [r.id for r in runs], "u": unique}


def _cli(server: Server, tmp_path: Path, *args: str) -> Result:
    env = {"RUNYARD_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_sdk_list_filters_and_numbered_pages(client: Client, made: dict[str, Any]) -> None:
    ids, u, tools = made["ids"], made["u"], made["tools"]
    assert {r.id for r in client.runs.list(project=f"pj0-{u}")} == {ids[0], ids[2], ids[4]}
    assert {r.id for r in client.runs.list(tool=tools, session=f"sdk-{u}")} == set(ids)
    assert [r.id for r in client.runs.list(example_id_contains=f"ex3-{u}")] == [ids[3]]
    assert [r.id for r in client.runs.list(source_ref="ref-1", session=f"sdk-{u}", app="nb")] == [ids[1]]
    page = client.runs.list(session=f"sdk-{u}", page=2, page_size=2)
    assert [r.id for r in page.items] == [ids[2], ids[1]]
    # iterating a numbered page goes on with pages of its size
    assert [r.id for r in page] == [ids[2], ids[1], ids[0]]
    by_tool = [r.tool_name for r in client.runs.list(session=f"sdk-{u}", sort="tool_name", order="asc")]
    assert by_tool == sorted(by_tool)


def test_sdk_search(client: Client, made: dict[str, Any]) -> None:
    ids, u = made["ids"], made["u"]
    result = client.runs.search([{"field": "session", "op": "eq", "value": f"sdk-{u}"},
                                 {"field": "inputs.n", "op": "gte", "value": 2}],
                                select=["id", "inputs"], with_total_count=True, order="created_at asc", limit=2)
    assert isinstance(result, RunSearchResult)
    assert [item["id"] for item in result.items] == [ids[2], ids[3]] and result.total == 3
    assert result.items[0]["inputs"] == {"n": 2, "word": "w2"} and result.next_offset == 2
    with pytest.raises(APIStatusError) as caught:
        client.runs.search([{"field": "nope", "op": "eq", "value": 1}])
    assert caught.value.code == "unknown_search_field"


def test_cli_list_and_search(server: Server, tmp_path: Path, made: dict[str, Any]) -> None:
    ids, u, tools = made["ids"], made["u"], made["tools"]
    listed = _cli(server, tmp_path, "runs", "list", "--tool", tools[0], "--tool", tools[1], "--project", f"pj1-{u}",
                  "--json")
    assert listed.exit_code == 0, listed.output
    assert {r["id"] for r in json.loads(listed.stdout)} == {ids[1], ids[3]}
    paged = _cli(server, tmp_path, "runs", "list", "--session", f"sdk-{u}", "--page", "3", "--page-size", "2",
                 "--json")
    assert [r["id"] for r in json.loads(paged.stdout)] == [ids[0]]
    contains = _cli(server, tmp_path, "runs", "list", "--example-contains", f"ex4-{u}", "--json")
    assert [r["id"] for r in json.loads(contains.stdout)] == [ids[4]]
    found = _cli(server, tmp_path, "runs", "search", "--where", f"session eq sdk-{u}", "--where", "inputs.n in 1,4",
                 "--where", 'inputs.word eq "w1"', "--total", "--json")
    assert found.exit_code == 0, found.output
    body = json.loads(found.stdout)
    assert [item["id"] for item in body["items"]] == [ids[1]] and body["total"] == 1
    table = _cli(server, tmp_path, "runs", "search", "-w", f"project eq pj0-{u}", "--select", "id,project",
                 "--total")
    assert table.exit_code == 0 and ids[4] in table.stdout and "3 matching run(s)" in table.stdout
    bad = _cli(server, tmp_path, "runs", "search", "--where", "status like x")
    assert bad.exit_code != 0 and "FIELD OP VALUE" in bad.output
    refused = _cli(server, tmp_path, "runs", "search", "--where", "nope eq 1")
    assert refused.exit_code != 0 and "unknown field" in refused.output

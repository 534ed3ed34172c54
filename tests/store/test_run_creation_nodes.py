"""Run creation reads the tool from a per-process cache and checks it in the INSERT: a
node never runs a version, or a tool, that another node has since replaced or deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.config import Settings
from runyard.services.access import Principal
from runyard.services.errors import NotFound
from runyard.wiring import Platform
from tests.support.servers import PgDatabase


@pytest.fixture
def nodes(backend: str, tmp_path: Path) -> Iterator[tuple[Platform, Platform]]:
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


def _admin(platform: Platform) -> Principal:
    return Principal(token_id="tok_test", workspace_id=platform.workspace_id, role="admin")


def test_runs_take_the_tool_as_it_is_now_whichever_node_changed_it(nodes: tuple[Platform, Platform]) -> None:
    a, b = nodes
    ws = a.workspace_id
    assert b.workspace_id == ws
    a.tools.deploy(ws, name="t", code="def main(x: int = 1):\n    return x\n")
    first, _ = b.runs.create(_admin(b), tool="t", inputs={"x": 2})
    assert first["tool_version"] == 1

    # Another node publishes version 2 (whose schema no longer takes x): b's cached row
    # is stale, the INSERT sees it, and b reads the tool afresh.
    a.tools.update(ws, "t", code="def main(y: str = 'a'):\n    return y\n")
    second, _ = b.runs.create(_admin(b), tool="t", inputs={"y": "b"})
    assert second["tool_version"] == 2
    pinned, _ = b.runs.create(_admin(b), tool="t", version=1, inputs={"x": 3})
    assert pinned["tool_version"] == 1

    # Deleted elsewhere: not found here either, at once.
    a.tools.delete(ws, "t")
    with pytest.raises(NotFound):
        b.runs.create(_admin(b), tool="t")

    # Deployed again under the same name: a new tool, which b finds.
    tool, created = a.tools.deploy(ws, name="t", code="def main():\n    return 0\n")
    assert created
    again, _ = b.runs.create(_admin(b), tool="t")
    assert again["tool_id"] == tool["id"] and again["tool_id"] != first["tool_id"]
    assert again["tool_version"] == 1

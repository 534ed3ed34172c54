"""The SDK over a real server: ``runs.files`` (list, delete, callable), ``runs.delete_file``,
``runs.get(expand=...)``, ``runs.connect`` and the ``runs.live`` iterators (sync and async)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runyard import AsyncClient, Client
from runyard.sdk.errors import ConflictError, NotFoundError
from tests.support.servers import Server

TOOL = """
from pathlib import Path
from runyard import context
def main(doc: str = "", n: int = 2):
    for i in range(n):
        print("sdk line", i)
    (Path(context.output_dir()) / "out.txt").write_text("out")
    return n
"""


@pytest.fixture
def client(server: Server) -> Any:
    with Client(api_key=server.admin_key, base_url=server.base_url) as c:
        yield c


def test_files_and_expand(client: Client, tmp_path: Path, unique: str) -> None:
    tool = f"sdk-files-{unique}"
    client.tools.deploy(TOOL, name=tool)
    doc = tmp_path / "given.txt"
    doc.write_text("given")
    waiting = client.runs.create(tool, {"doc": doc}, requires_confirmation=True)
    files = client.runs.files(waiting)
    assert [(f.direction, f.name, f.input) for f in files] == [("input", "given.txt", "doc")]
    assert client.runs.files.list(waiting.id) == files
    client.runs.delete_file(waiting, files[0].id)
    assert client.runs.files(waiting) == []
    with pytest.raises(NotFoundError):
        client.runs.files.delete(waiting, files[0].id)

    done = client.runs.create(tool, {"doc": doc}, wait=30)
    assert done.succeeded
    files = client.runs.files(done)
    assert [f.direction for f in files] == ["input", "output"] and files[1].name == "out.txt"
    with pytest.raises(ConflictError):
        client.runs.files.delete(done, files[0].id)
    run = client.runs.get(done, expand=["execution", "debug"], include_inputs=True)
    assert run.inputs == {} and run.execution is not None and run.debug is not None
    assert run.execution.worker is not None and run.execution.worker.id == done.worker_id
    assert run.execution.timings is not None and run.execution.timings.duration_ms is not None
    assert run.debug.recorded and run.debug.limits is not None
    assert client.runs.get(done, expand="execution").debug is None
    assert client.runs.get(done).execution is None


def test_connect_and_live(client: Client, server: Server, unique: str) -> None:
    tool = f"sdk-live-{unique}"
    client.tools.deploy(TOOL, name=tool)
    run = client.runs.create(tool, {"n": 3}, wait=30)
    link = client.runs.connect(run)
    assert link.run_id == run.id and link.url.startswith("ws://") and link.expires_at is not None
    messages = list(client.runs.live(run, timeout=30))
    assert messages[-1]["type"] == "end" and messages[-1]["status"] == "succeeded"
    text = "".join(m["text"] for m in messages if m["type"] == "log")
    assert "sdk line 2" in text

    async def follow() -> list[dict[str, Any]]:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url) as ac:
            assert len(await ac.runs.files(run)) == 1
            return [m async for m in ac.runs.live(run, timeout=30)]

    async_messages = asyncio.run(follow())
    assert async_messages[-1]["type"] == "end"
    assert "".join(m["text"] for m in async_messages if m["type"] == "log") == text

"""The SDK's evaluation surface against the real server: client.runs.expected /
comparison / feedback and client.batches, sync and async."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import runyard
from runyard.sdk.errors import NotFoundError
from tests.support.api import deploy
from tests.support.servers import Server

TOOL = """
from pathlib import Path
from runyard import context

def main(x: int = 1):
    (Path(context.output_dir()) / "out.txt").write_text(f"x={x}\\n")
    return {"x": x}
"""


def test_sdk_expected_comparison_feedback_and_batches(server: Server, api, unique: str, tmp_path: Path) -> None:
    tool = f"sdkev-{unique}"
    deploy(api, tool, TOOL)
    with runyard.Client(api_key=server.admin_key, base_url=server.base_url) as client:
        run = client.runs.create(tool, {"x": 1}, tags={"example_id": "one"}, wait=30)
        with pytest.raises(NotFoundError) as err:
            client.runs.comparison.get(run)
        assert err.value.code == "expected_not_found"
        expected = client.runs.expected.copy_output(run, artifacts=["out.txt"], options={"numeric_tolerance": 0.5})
        assert expected.example_id == "one" and expected.files[0].filename == "out.txt"
        expected = client.runs.expected.set(run, files={"extra.txt": b"hello"})
        assert [f.filename for f in expected.files] == ["extra.txt", "out.txt"]
        assert client.runs.expected.download(run, "extra.txt") == b"hello"
        written = client.runs.expected.download(run, "extra.txt", tmp_path)
        assert Path(written).read_bytes() == b"hello"
        assert [f.filename for f in client.runs.expected.rename(run, "extra.txt", "more.txt").files] == [
            "more.txt", "out.txt"]
        client.runs.expected.delete(run, "more.txt")
        assert [f.filename for f in client.runs.expected.get(run).files] == ["out.txt"]

        comparison = client.runs.comparison.get(run)
        assert comparison.score == 1.0 and comparison.files[0].kind == "equal"
        other = client.runs.create(tool, {"x": 2}, wait=30)
        against = client.runs.comparison.compare(other, other=run)
        assert against.score < 1 and {d.path for d in against.fields} == {"$.x"}
        assert client.runs.comparison.compare(other, expected={"x": 2.4}, options={"numeric_tolerance": 0.5}).score == 1

        feedback = client.runs.feedback.update(run, rating="up", labels=["good"], corrected_output={"x": 1})
        assert feedback.rating == "up" and feedback.corrected_output == {"x": 1}
        assert client.runs.feedback.resolve(run).resolved is True
        client.runs.feedback.clear(run)
        with pytest.raises(NotFoundError):
            client.runs.feedback.get(run)

        batch = client.batches.create(tool=tool, examples=[{"example_id": "one", "inputs": {"x": 1}},
                                                           {"example_id": "two", "inputs": {"x": 2}}])
        done = client.batches.wait(batch, timeout=60)
        assert done.counts == {"succeeded": 2} and done.mean_score == 1.0 and done.scored == 1
        assert [b.id for b in client.batches.list(tool=tool)] == [batch.id]
        assert client.batches.cancel(batch).status == "cancelled"

    async def use_async() -> None:
        async with runyard.AsyncClient(api_key=server.admin_key, base_url=server.base_url) as client:
            got = await client.runs.expected.get(run.id)
            assert got.id == expected.id
            batch = await client.batches.get(done.id)
            assert batch.target.name == tool

    asyncio.run(use_async())

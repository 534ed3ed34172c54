"""``runs.create_many`` and ``runs.wait`` over many runs, sync and async, against the real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from runyard import AsyncClient, Client, NotFoundError, RunBatchItem, WaitTimeoutError
from tests.support.sdk import ADD_CODE, Fault

SLEEP_CODE = "import time\n\ndef main(s: float = 30.0):\n    time.sleep(s)\n    return s\n"


def test_create_many_and_wait(client: Client, add_tool: str, unique: str) -> None:
    specs: list[dict[str, Any]] = [{"tool": add_tool, "inputs": {"a": i, "b": 1}, "tags": {"batch_id": unique}}
                                   for i in range(5)]
    specs.insert(2, {"tool": add_tool, "inputs": {"a": "x"}})
    specs.insert(4, {"tool": f"missing-{unique}"})
    items = client.runs.create_many(specs)
    assert all(isinstance(i, RunBatchItem) for i in items)
    assert [i.index for i in items] == list(range(7))
    assert [i.ok for i in items] == [True, True, False, True, False, True, True]
    assert items[2].status == 400 and items[2].error is not None and items[2].error.code == "invalid_inputs"
    assert items[4].status == 404 and items[4].error is not None and items[4].error.code == "tool_not_found"
    ids = [i.run.id for i in items if i.run is not None]
    done = client.runs.wait(ids, timeout=60)
    assert [r.id for r in done] == ids
    assert [r.output for r in done] == [1, 2, 3, 4, 5]
    assert client.runs.list(batch_id=unique, include_total=True).total == 5
    assert client.runs.create_many([]) == []
    with pytest.raises(TypeError, match="colour"):
        client.runs.create_many([{"tool": add_tool, "colour": "red"}])


def test_create_many_retried_after_a_lost_answer_creates_nothing_twice(make_client: Any, proxy: Any,
                                                                      add_tool: str, unique: str) -> None:
    # The server creates the runs but the answer is lost: the SDK sends the batch again
    # with the same Idempotency-Key, and every item is a replay of the first attempt.
    proxy.add(Fault("POST", "/api/v1/runs/batch", times=1, kind="drop_after_forward"))
    c = make_client(base_url=proxy.url, max_retries=2)
    items = c.runs.create_many([{"tool": add_tool, "inputs": {"a": i}, "tags": {"batch_id": unique}}
                                for i in range(3)])
    assert [i.status for i in items] == [200, 200, 200]
    assert c.runs.list(batch_id=unique, include_total=True).total == 3


def test_wait_timeout_reports_every_run(client: Client, add_tool: str, unique: str) -> None:
    sleeper = f"bsleep-{unique}"
    client.tools.deploy(SLEEP_CODE, name=sleeper)
    items = client.runs.create_many([{"tool": add_tool, "inputs": {"a": 1}}, {"tool": sleeper, "inputs": {"s": 30}}])
    ids = [i.run.id for i in items if i.run is not None]
    client.runs.wait(ids[0], timeout=30)
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        client.runs.wait(ids, timeout=1)
    assert 0.9 <= time.monotonic() - started < 15
    assert {r.id: r.status for r in caught.value.runs} == {ids[0]: "succeeded", ids[1]: caught.value.runs[1].status}
    assert caught.value.runs[1].status in ("queued", "running")
    client.runs.cancel(ids[1])
    assert client.runs.wait(ids, timeout=30)[1].status == "cancelled"
    with pytest.raises(NotFoundError):
        client.runs.wait([ids[0], f"run_missing{unique}"], timeout=1)


def test_async_create_many_and_wait(server: Any, unique: str) -> None:
    async def go() -> None:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url) as c:
            tool = f"abatch-{unique}"
            await c.tools.deploy(ADD_CODE, name=tool)
            items = await c.runs.create_many([{"tool": tool, "inputs": {"a": i}} for i in range(20)]
                                             + [{"tool": tool, "inputs": {"a": []}}])
            assert [i.status for i in items] == [201] * 20 + [400]
            runs = await c.runs.wait([i.run for i in items if i.run is not None], timeout=60)
            assert [r.output for r in runs] == [i + 2 for i in range(20)]
            sleeper = f"asleep-{unique}"
            await c.tools.deploy(SLEEP_CODE, name=sleeper)
            slow = (await c.runs.create_many([{"tool": sleeper, "inputs": {"s": 30}}]))[0].run
            assert slow is not None
            with pytest.raises(WaitTimeoutError) as caught:
                await c.runs.wait([runs[0], slow], timeout=0.5)
            assert [r.id for r in caught.value.runs] == [runs[0].id, slow.id]
            await c.runs.cancel(slow)
            assert (await c.runs.wait(slow, timeout=30)).status == "cancelled"

    asyncio.run(go())

"""Following logs live over SSE, including across connections the proxy cuts mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from runyard import AsyncClient, Client
from tests.support.sdk import Fault, FaultProxy

CHATTY_CODE = '''
import time

def main(n: int = 40, pause: float = 0.02) -> int:
    for i in range(n):
        print(f"line {i:03d}", flush=True)
        if i % 7 == 0:
            print("", flush=True)  # empty lines must survive too
        time.sleep(pause)
    return n
'''


def _expected(n: int) -> list[str]:
    out = []
    for i in range(n):
        out.append(f"line {i:03d}")
        if i % 7 == 0:
            out.append("")
    return out


def test_follow_receives_lines_while_running(client: Client, unique: str) -> None:
    name = f"chatty-{unique}"
    client.tools.deploy(CHATTY_CODE, name=name)
    run = client.runs.create(name, {"n": 20, "pause": 0.05})
    stream = client.runs.logs(run.id, follow=True)
    lines = []
    saw_running = False
    for line in stream:
        lines.append(line)
        if len(lines) == 3:
            saw_running = not client.runs.get(run.id).is_terminal
    assert lines == _expected(20)
    assert saw_running
    assert stream.status == "succeeded"


def test_follow_survives_dropped_connections(
    proxy: FaultProxy, client: Client, make_client: Callable[..., Client], unique: str
) -> None:
    name = f"chatty-{unique}"
    client.tools.deploy(CHATTY_CODE, name=name)
    run = client.runs.create(name, {"n": 40, "pause": 0.05})
    # Cut the stream mid-body after a few events (the first is the ``retry:`` hint),
    # three times in a row, while the run is still writing.
    cut = proxy.add(Fault("GET", f"/api/v1/runs/{run.id}/logs", times=3, kind="cut_stream", after_events=3))
    stream = make_client(base_url=proxy.url).runs.logs(run.id, follow=True)
    lines = list(stream)
    assert lines == _expected(40)  # nothing lost, nothing repeated
    assert stream.status == "succeeded"
    assert cut.hits == 3
    attempts = proxy.requests_to("GET", f"/api/v1/runs/{run.id}/logs")
    assert attempts[0].headers.get("last-event-id") is None
    resumed = [int(a.headers["last-event-id"]) for a in attempts[1:]]
    assert len(resumed) >= 2 and all(r > 0 for r in resumed)
    assert resumed == sorted(resumed)


def test_follow_after_the_run_ended_and_offset(client: Client, unique: str) -> None:
    name = f"chatty-{unique}"
    client.tools.deploy(CHATTY_CODE, name=name)
    run = client.tools.run(name, {"n": 5, "pause": 0})
    full = client.runs.logs(run.id)
    assert list(client.runs.logs(run.id, follow=True)) == _expected(5)
    assert client.runs.logs(run.id, offset=len("line 000\n\n")) == full[len("line 000\n\n"):]


def test_async_follow_survives_dropped_connection(proxy: FaultProxy, client: Client, server: object, unique: str) -> None:
    name = f"chatty-{unique}"
    client.tools.deploy(CHATTY_CODE, name=name)
    run = client.runs.create(name, {"n": 30, "pause": 0.02})
    proxy.add(Fault("GET", f"/api/v1/runs/{run.id}/logs", times=2, kind="cut_stream", after_events=2))

    async def follow() -> list[str]:
        async with AsyncClient(api_key=client.api_key, base_url=proxy.url) as ac:
            return [line async for line in ac.runs.logs(run.id, follow=True)]

    assert asyncio.run(follow()) == _expected(30)

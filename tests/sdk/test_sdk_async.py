"""AsyncClient parity: the same resource tree, awaited, against the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from runyard import AsyncClient, ConflictError, NotFoundError, RunFailedError, WaitTimeoutError
from tests.support.sdk import ADD_CODE, FAIL_CODE

SLEEP_CODE = "import time\n\ndef main(s: float = 30.0):\n    time.sleep(s)\n    return s\n"
ART_CODE = ("import os\n\ndef main() -> str:\n    p = os.environ['RUNYARD_OUTPUT_DIR']\n"
            "    open(os.path.join(p, 'a.txt'), 'w').write('A')\n    return 'ok'\n")
FILE_CODE = "def main(data: str) -> str:\n    return open(data).read()[::-1]\n"


def test_async_parity(server: Any, unique: str, tmp_path: Path) -> None:
    async def go() -> None:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url) as c:
            name = f"aadd-{unique}"
            tool = await c.tools.deploy(ADD_CODE, name=name)
            assert tool.version == 1
            assert (await c.tools.get(tool.id)).name == name
            assert (await c.tools.update(name, description="d")).description == "d"
            assert [v.version async for v in c.tools.versions(name)]
            assert (await c.tools.get_version(name, 1)).version == 1
            assert name in [t.name async for t in c.tools.list(search=unique)]

            runs = [await c.runs.create(name, {"a": i}) for i in range(4)]
            done = await c.runs.wait(runs, timeout=60)  # long-polled concurrently
            assert [r.output for r in done] == [2, 3, 4, 5]
            one = await c.runs.create(name, {"a": 1}, wait=30)
            assert one.output == 3
            assert (await c.runs.get(one.id, include_inputs=True)).inputs == {"a": 1}
            assert "adding 1 and 2" in await c.runs.logs(one.id)
            assert (await c.runs.wait(await c.runs.rerun(one.id), timeout=30)).output == 3
            assert one.id in [r.id async for r in c.runs.list(tool=name)]

            failing = f"afail-{unique}"
            await c.tools.deploy(FAIL_CODE, name=failing)
            with pytest.raises(RunFailedError):
                await c.tools.run(failing, raise_on_failure=True)

            sleeper = f"asleep-{unique}"
            await c.tools.deploy(SLEEP_CODE, name=sleeper)
            slow = await c.runs.create(sleeper, {"s": 30})
            with pytest.raises(WaitTimeoutError):
                await c.runs.wait([slow], timeout=0.5)
            await c.runs.cancel(slow)
            assert (await c.runs.wait(slow, timeout=10)).status == "cancelled"

            gated = await c.runs.create(name, {"a": 9}, requires_confirmation=True)
            assert gated.status == "awaiting_confirmation"
            await c.runs.confirm(gated)
            assert (await c.runs.wait(gated, timeout=30)).output == 11

            arts = f"aart-{unique}"
            await c.tools.deploy(ART_CODE, name=arts)
            ar = await c.tools.run(arts)
            assert [a.path for a in await c.runs.artifacts.list(ar)] == ["a.txt"]
            assert await c.runs.artifacts.download(ar, "a.txt") == b"A"
            assert (await c.runs.artifacts.download(ar, "a.txt", tmp_path)).read_bytes() == b"A"
            assert (await c.runs.artifacts.download_zip(ar, tmp_path / "z.zip")).stat().st_size > 0

            rev = f"arev-{unique}"
            await c.tools.deploy(FILE_CODE, name=rev)
            f = tmp_path / "x.txt"
            f.write_text("abc")
            assert (await c.tools.run(rev, {"data": f})).output == "cba"
            gated_file = await c.runs.create(rev, requires_confirmation=True)
            await c.runs.files.upload(gated_file, {"data": f})
            await c.runs.confirm(gated_file)
            assert (await c.runs.wait(gated_file, timeout=30)).output == "cba"

            sec = f"ASEC_{unique.upper()}"
            await c.secrets.set(sec, "v1")
            with pytest.raises(ConflictError):
                await c.secrets.set(sec, "v2")
            assert sec in [s.name async for s in c.secrets.list()]
            await c.secrets.delete(sec)

            tok = await c.tokens.create(f"atok-{unique}", role="viewer")
            assert tok.key
            assert (await c.tokens.get(tok.id)).name == f"atok-{unique}"
            assert tok.id in [t.id async for t in c.tokens.list()]
            await c.tokens.delete(tok.id)
            with pytest.raises(NotFoundError):
                await c.tokens.get(tok.id)

            await c.tools.delete(name)
            with pytest.raises(NotFoundError):
                await c.tools.get(name)
            assert (await c.health())["status"] == "ok"

    asyncio.run(go())

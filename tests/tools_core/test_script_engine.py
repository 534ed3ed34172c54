"""The engine's script mode alone (no server): a module run with its inputs as globals,
its named globals returned, in a fresh or a reused process, under the run's timeout."""

from __future__ import annotations

import dataclasses
from typing import Any

from runyard.engine.executor import ExecRequest, Executor, Limits
from tests.support.engine import MakeRequest


def _run(engine: Executor, req: ExecRequest) -> tuple[Any, bytes]:
    output: list[bytes] = []
    result = engine.submit(req, output.append).wait(30)
    return result, b"".join(output)


def test_a_script_sees_its_inputs_as_globals_and_returns_the_named_ones(
        executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("print(__name__, greeting)\nshout = greeting.upper()\nlength = len(shout)\n",
                       inputs={"greeting": "hi"})
    result, output = _run(executor, dataclasses.replace(req, output_vars=["shout", "length"]))
    assert result.status == "succeeded", result.error
    assert result.output == {"shout": "HI", "length": 2}
    assert output == b"__main__ hi\n"


def test_a_reused_process_starts_each_script_run_with_fresh_globals(
        executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("seen = globals().get('carried', 0)\ncarried = seen + n\n", inputs={"n": 1})
    req = dataclasses.replace(req, output_vars=["seen", "carried"], reuse_process=True)
    first, _ = _run(executor, req)
    second, _ = _run(executor, dataclasses.replace(req, run_id=req.run_id + "b", inputs={"n": 5}))
    assert first.output == {"seen": 0, "carried": 1}, first.error
    assert second.output == {"seen": 0, "carried": 5}, second.error


def test_a_script_is_stopped_at_its_timeout(executor: Executor, make_request: MakeRequest) -> None:
    req = make_request("import time\ntime.sleep(30)\ndone = True\n")
    result, _ = _run(executor, dataclasses.replace(req, output_vars=["done"], limits=Limits(timeout_s=1)))
    assert result.status == "timed_out", result

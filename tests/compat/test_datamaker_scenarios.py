"""``runyard.compat.datamaker``: DataMaker's Scenarios operations as a client over the runyard
SDK, against a real server on loopback (real runs in child processes)."""

from __future__ import annotations

import ast
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.compat.datamaker import DataMaker, DataMakerError, coerce_params
from tests.support.servers import Server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

GREET = '''
def main(environment: str, size: int = 1):
    print(f"loading {size} rows into {environment}", flush=True)
    return {"environment": environment, "rows": size * 2}
'''

GREET_V2 = '''
def main(environment: str, size: int = 1):
    print("v2 running", flush=True)
    return {"environment": environment, "rows": size * 3, "version": 2}
'''

SLEEPER = '''
import time

def main(seconds: str = "60"):
    print("sleeping", flush=True)
    time.sleep(float(seconds))
    return "woke"
'''


@pytest.fixture
def dm(server: Server) -> Iterator[DataMaker]:
    with DataMaker(api_key=server.admin_key, base_url=server.base_url) as client:
        yield client


def scenario_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_lists_and_runs_with_wait_true(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("load"), GREET, description="fills a test environment")
    assert made["id"].startswith("tool_") and made["version"] == 1
    assert made["params"] == ["environment", "size"]

    listed = dm.scenarios.list(search=made["name"])
    assert [s["id"] for s in listed["items"]] == [made["id"]]
    assert set(listed) == {"items", "next_cursor", "total"} and listed["total"] == 1

    # Params are strings on DataMaker's wire: "500" becomes the int the signature asks for.
    run = dm.scenarios.run(made["id"], {"environment": "regression", "size": "500"}, wait="true")
    assert run["status"] == "succeeded"
    assert run["output"] == {"environment": "regression", "rows": 1000}
    assert run["params"] == {"environment": "regression", "size": 500}
    assert run["scenario_id"] == made["id"] and run["scenario_version"] == 1
    assert run["error"] is None and run["finished_at"] is not None


def test_run_without_waiting_then_detail_and_logs(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("load"), GREET)
    started = dm.scenarios.run(made["id"], {"environment": "staging", "size": "4"}, wait=False)
    assert started["id"].startswith("run_") and started["status"] in {"queued", "running", "succeeded"}

    assert wait_for(lambda: dm.scenarios.run_detail(made["id"], started["id"])["status"] == "succeeded", 30)
    detail = dm.scenarios.run_detail(made["id"], started["id"])
    assert detail["output"] == {"environment": "staging", "rows": 8}
    assert detail["params"] == {"environment": "staging", "size": 4}
    assert detail["started_at"] and detail["finished_at"] and detail["duration_ms"] is not None

    assert "loading 4 rows into staging" in dm.scenarios.logs(made["id"], started["id"])
    followed = list(dm.scenarios.logs(made["id"], started["id"], follow=True))
    assert "loading 4 rows into staging" in followed


def test_replace_code_makes_the_next_run_use_it(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("load"), GREET)
    first = dm.scenarios.run(made["id"], {"environment": "a", "size": "1"}, wait=True)
    assert first["output"] == {"environment": "a", "rows": 2}

    replaced = dm.scenarios.replace(made["id"], GREET_V2)
    assert replaced["id"] == made["id"] and replaced["version"] == 2
    second = dm.scenarios.run(made["id"], {"environment": "a", "size": "1"}, wait=True)
    assert second["output"] == {"environment": "a", "rows": 3, "version": 2}
    assert second["scenario_version"] == 2
    assert "v2 running" in dm.scenarios.logs(made["id"], second["id"])

    # The earlier run keeps the version it ran.
    assert dm.scenarios.run_detail(made["id"], first["id"])["scenario_version"] == 1


def test_list_runs_pages_newest_first(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("load"), GREET)
    other = dm.scenarios.create(scenario_name("other"), GREET)
    ids = [dm.scenarios.run(made["id"], {"environment": f"e{i}"}, wait=True)["id"] for i in range(3)]
    dm.scenarios.run(other["id"], {"environment": "elsewhere"}, wait=True)

    page = dm.scenarios.runs(made["id"], limit=2)
    assert page["total"] == 3 and page["next_cursor"]
    rest = dm.scenarios.runs(made["id"], cursor=page["next_cursor"], limit=2)
    assert rest["next_cursor"] is None
    seen = [r["id"] for r in page["items"] + rest["items"]]
    assert seen == list(reversed(ids))
    assert all(r["status"] == "succeeded" and r["scenario_id"] == made["id"] for r in page["items"])
    # By name too, and filtered by status.
    assert dm.scenarios.runs(made["name"], status="failed")["items"] == []


def test_cancel_a_sleeping_run(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("sleepy"), SLEEPER)
    started = dm.scenarios.run(made["id"], {"seconds": "60"})
    assert wait_for(lambda: "sleeping" in dm.scenarios.logs(made["id"], started["id"]), 30)

    began = time.monotonic()
    dm.scenarios.cancel(made["id"], started["id"])
    assert wait_for(lambda: dm.scenarios.run_detail(made["id"], started["id"])["status"] == "cancelled", 20)
    assert time.monotonic() - began < 20
    detail = dm.scenarios.run_detail(made["id"], started["id"])
    assert detail["output"] is None and detail["finished_at"] is not None
    # Cancelling again answers the run as it ended.
    assert dm.scenarios.cancel(made["id"], started["id"])["status"] == "cancelled"


def test_unknown_scenario_is_a_datamaker_error(dm: DataMaker) -> None:
    for call in (lambda: dm.scenarios.run("tool_00000000000000000000000000", {"x": "1"}, wait=True),
                 lambda: dm.scenarios.runs("no-such-scenario"),
                 lambda: dm.scenarios.replace("no-such-scenario", GREET)):
        with pytest.raises(DataMakerError) as info:
            call()
        err = info.value
        assert err.status_code == 404 and err.code == "scenario_not_found"
        assert err.message.startswith("scenario ")
        body = err.body["error"]
        assert set(body) >= {"code", "message", "details"} and body["code"] == "scenario_not_found"
        assert body["details"]["runyard_code"] == "tool_not_found"


def test_bad_runs_and_params_are_refused(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("load"), GREET)
    other = dm.scenarios.create(scenario_name("other"), GREET)
    run = dm.scenarios.run(other["id"], {"environment": "x"}, wait=True)

    # A run of another scenario is not found under this one.
    for call in (lambda: dm.scenarios.run_detail(made["id"], run["id"]),
                 lambda: dm.scenarios.logs(made["id"], run["id"]),
                 lambda: dm.scenarios.cancel(made["id"], run["id"]),
                 lambda: dm.scenarios.run_detail(made["id"], "run_00000000000000000000000000")):
        with pytest.raises(DataMakerError) as info:
            call()
        assert info.value.status_code == 404 and info.value.code == "run_not_found"

    # A param that is not the type the code asks for is refused before any run starts.
    with pytest.raises(DataMakerError) as info:
        dm.scenarios.run(made["id"], {"environment": "x", "size": "many"}, wait=True)
    assert info.value.status_code in (400, 422) and info.value.code == "invalid_inputs"
    assert dm.scenarios.runs(made["id"])["total"] == 0

    with pytest.raises(DataMakerError) as info:
        dm.scenarios.create(made["name"], GREET)
    assert info.value.status_code == 409 and info.value.code == "scenario_exists"

    with pytest.raises(ValueError):
        dm.scenarios.run(made["id"], {}, wait="maybe")


def test_failed_run_reports_its_error(dm: DataMaker) -> None:
    made = dm.scenarios.create(scenario_name("boom"), "def main():\n    raise RuntimeError('no data')\n")
    run = dm.scenarios.run(made["id"], wait=True)
    assert run["status"] == "failed"
    assert run["error"]["code"] == "RuntimeError" and "no data" in run["error"]["message"]


def test_coerce_params_reads_strings_as_the_schema_asks() -> None:
    schema = {"properties": {
        "n": {"type": "integer"}, "x": {"type": "number"}, "flag": {"type": "boolean"},
        "opt": {"anyOf": [{"type": "integer"}, {"type": "null"}]}, "tags": {"type": "array"},
        "name": {"type": "string"}, "any": {},
    }}
    got = coerce_params({"n": "500", "x": "1.5", "flag": "True", "opt": "7", "tags": '["a"]', "name": "42",
                         "any": "3", "bad": "9", "nn": 5}, schema)
    assert got == {"n": 500, "x": 1.5, "flag": True, "opt": 7, "tags": ["a"], "name": "42", "any": "3",
                   "bad": "9", "nn": 5}
    assert coerce_params({"n": "five"}, schema) == {"n": "five"}  # runyard's validation answers this


def test_compat_imports_only_the_sdk() -> None:
    root = Path(__file__).resolve().parents[2] / "src" / "runyard" / "compat"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            for name in names:
                parts = name.split(".")
                assert parts[0] != "runyard" or parts[1:2] == ["sdk"], f"{path.name} imports {name}"

"""Runs through the real server: inputs, idempotency, cancel, timeout, limits, logs, files."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import httpx
import pytest

from tests.support.api import TERMINAL, deploy, error_code, run, wait_status
from tests.support.processes import alive


def test_validation_and_idempotency(api, unique):
    deploy(api, f"echo-{unique}", "def main(x: int, y: str = 'd'):\n    return [x, y]\n",
           default_inputs={"y": "dflt"})
    r = api.post("/runs", json={"tool": f"echo-{unique}", "inputs": {"x": "nope", "extra": 1}})
    assert error_code(r) == "invalid_inputs"
    assert {e["field"] for e in r.json()["error"]["details"]["errors"]} == {"x", "extra"}
    assert error_code(api.post("/runs", json={"tool": f"echo-{unique}"})) == "invalid_inputs"
    assert error_code(api.post("/runs", json={"tool": "no-such-tool"})) == "tool_not_found"
    assert error_code(api.post("/runs", json={"tool": f"echo-{unique}", "version": 9, "inputs": {"x": 1}})) \
        == "version_not_found"
    assert error_code(api.post("/runs", json={"tool": f"echo-{unique}", "inputs": {"x": 1},
                                              "tags": {"color": "red"}})) == "validation_error"
    assert error_code(api.post("/runs", params={"wait": 9999}, json={"tool": f"echo-{unique}"})) \
        == "validation_error"
    before = api.get("/runs", params={"tool": f"echo-{unique}", "include_total": True}).json()["total"]
    assert before == 0

    headers = {"Idempotency-Key": f"key-{unique}"}
    body = {"tool": f"echo-{unique}", "inputs": {"x": 1}, "tags": {"session": f"s-{unique}"}}
    first = api.post("/runs", params={"wait": 10}, json=body, headers=headers)
    second = api.post("/runs", params={"wait": 10}, json=body, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["output"] == [1, "dflt"]
    assert second.status_code == 200
    assert error_code(api.post("/runs", json={**body, "inputs": {"x": 2}}, headers=headers)) \
        == "idempotency_key_reused"
    listed = api.get("/runs", params={"session": f"s-{unique}", "include_total": True}).json()
    assert listed["total"] == 1
    got = api.get(f"/runs/{first.json()['id']}", params={"expand": "inputs"}).json()
    assert got["inputs"] == {"x": 1, "y": "dflt"} and got["tags"] == {"session": f"s-{unique}"}
    assert got["usage"]["wall_ms"] > 0 and got["tool_version"] == 1


def test_run_creation_requests_are_checked_like_every_other(server, api, unique):
    """JSON run creation is served ahead of FastAPI (api/fastlane.py): same checks, same envelope."""
    deploy(api, f"lane-{unique}", "def main(x: int = 1):\n    return x\n")
    r = api.post("/runs", params={"wait": "soon"}, json={"tool": f"lane-{unique}"})
    assert r.status_code == 400 and error_code(r) == "validation_error"
    assert r.json()["error"]["details"]["errors"][0]["field"] == "wait"
    for raw in (b"{", b"[1, 2]", b""):
        r = api.post("/runs", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400 and error_code(r) == "invalid_json", raw
    r = api.post("/runs", json={"tool": f"lane-{unique}", "colour": "red"})
    assert error_code(r) == "validation_error" and r.json()["error"]["details"]["fields"] == ["colour"]
    anonymous = httpx.post(f"{server.api}/runs", json={"tool": f"lane-{unique}"}, headers={"X-Request-ID": "mine-1"})
    assert anonymous.status_code == 401 and error_code(anonymous) == "missing_api_key"
    assert anonymous.headers["x-request-id"] == "mine-1"
    ok = api.post("/runs", params={"wait": "10", "expand": "inputs"}, json={"tool": f"lane-{unique}", "inputs": {"x": 3}},
                  headers={"X-Request-ID": "mine-2", "X-Runyard-Trigger": "cli"})
    assert ok.status_code == 201 and ok.headers["x-request-id"] == "mine-2"
    assert ok.headers["content-type"] == "application/json"
    assert ok.json()["output"] == 3 and ok.json()["inputs"] == {"x": 3} and ok.json()["trigger"] == "cli"


def test_first_runs_of_a_new_version_started_together_all_find_its_code(server, api, unique):
    """The first runs of a version lay its code out on the node: concurrent ones must not race."""
    from concurrent.futures import ThreadPoolExecutor

    def first_runs(tool: str) -> list[dict]:
        def one(_: int) -> dict:
            with server.client() as client:
                return client.post("/runs", params={"wait": 30}, json={"tool": tool}).json()
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(one, range(16)))

    for round_ in range(3):
        tool = f"fresh-{round_}-{unique}"
        # A long module: laying it out (byte-compiling) takes long enough for the runs to overlap.
        filler = "".join(f"CONSTANT_{i} = {i}\n" for i in range(20000))
        deploy(api, tool, f"{filler}def main():\n    return {round_}\n")
        results = first_runs(tool)
        assert [(r["status"], r["output"]) for r in results] == [("succeeded", round_)] * 16, \
            [r.get("error") for r in results if r["status"] != "succeeded"][:2]


def test_failure_has_traceback(api, unique):
    deploy(api, f"boom-{unique}", "def helper():\n    raise ValueError('bad thing')\n\ndef main():\n    helper()\n")
    result = run(api, f"boom-{unique}")
    assert result["status"] == "failed"
    assert result["error"]["type"] == "ValueError" and result["error"]["message"] == "bad thing"
    assert "helper" in result["error"]["traceback"]


def test_cancel_running_sleep_leaves_no_process(api, unique):
    code = """
import os, subprocess, time
def main():
    child = subprocess.Popen(["sleep", "60"])
    print("pids", os.getpid(), child.pid, flush=True)
    time.sleep(60)
"""
    deploy(api, f"sleepy-{unique}", code)
    created = run(api, f"sleepy-{unique}", wait=0)
    running = wait_status(api, created["id"], {"running"})
    assert running["status"] == "running"
    deadline = time.monotonic() + 10
    pids: list[int] = []
    while time.monotonic() < deadline and not pids:
        text = api.get(f"/runs/{created['id']}/logs").text
        if "pids" in text and text.endswith("\n"):  # print() may write the line in pieces
            pids = [int(p) for p in text.split("pids", 1)[1].split()[:2]]
        time.sleep(0.05)
    assert pids
    started = time.monotonic()
    cancelled = api.post(f"/runs/{created['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert time.monotonic() - started < 1.0
    survivors = pids
    deadline = time.monotonic() + 5  # the run's process group is killed: SIGTERM, then SIGKILL
    while survivors and time.monotonic() < deadline:
        survivors = [pid for pid in pids if alive(pid)]
        time.sleep(0.02)
    assert not survivors, f"processes {survivors} survived the cancel"
    # Cancelling a terminal run returns it unchanged.
    again = api.post(f"/runs/{created['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_timeout_and_memory_limit(api, unique):
    deploy(api, f"slow-{unique}", "import time\ndef main():\n    time.sleep(30)\n", timeout_s=0.5)
    result = run(api, f"slow-{unique}")
    assert result["status"] == "timed_out" and result["error"]["type"] == "timeout"
    hog = "def main():\n    data = bytearray(2 * 1024 ** 3)\n    return len(data)\n"
    deploy(api, f"hog-{unique}", hog, memory_mb=256)
    result = run(api, f"hog-{unique}")
    assert result["status"] == "failed"
    assert result["error"]["type"] == "memory_limit_exceeded" and "256" in result["error"]["message"]


def test_log_follow_live_and_resume(server, api, unique):
    code = """
import time
def main(n: int = 5):
    for i in range(n):
        print(f"line {i}", flush=True)
        time.sleep(0.3)
    return n
"""
    deploy(api, f"talk-{unique}", code)
    created = run(api, f"talk-{unique}", wait=0)
    received: list[tuple[float, str]] = []
    end: dict = {}
    with httpx.stream("GET", f"{server.api}/runs/{created['id']}/logs", params={"follow": "true"},
                      headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "log":
                received.append((time.monotonic(), line[6:]))
                if len(received) == 1:
                    status = api.get(f"/runs/{created['id']}").json()["status"]
                    assert status == "running", "the first line must arrive while the run is running"
            elif line.startswith("data: ") and event == "end":
                end = json.loads(line[6:])
                break
    assert [text for _, text in received] == [f"line {i}" for i in range(5)]
    assert end == {"status": "succeeded"}
    # Resuming from an event id (a byte offset) skips what was already seen.
    full = api.get(f"/runs/{created['id']}/logs").text
    offset = len("line 0\nline 1\n")
    with httpx.stream("GET", f"{server.api}/runs/{created['id']}/logs", params={"follow": "true"},
                      headers={"Authorization": f"Bearer {server.admin_key}", "Last-Event-ID": str(offset)},
                      timeout=30) as stream:
        rest = [line[6:] for line in stream.iter_lines() if line.startswith("data: ") and "status" not in line]
    assert "\n".join(rest) + "\n" == full[offset:]
    assert api.get(f"/runs/{created['id']}/logs", params={"offset": offset}).text == full[offset:]


def test_log_cap(api, unique):
    deploy(api, f"loud-{unique}", "def main():\n    for i in range(200000):\n        print('x' * 99)\n")
    result = run(api, f"loud-{unique}")
    assert result["status"] == "succeeded"
    assert result["log_truncated"] is True
    assert 10 * 1024 * 1024 <= result["log_bytes"] < 10 * 1024 * 1024 + 200
    assert api.get(f"/runs/{result['id']}/logs", params={"offset": 10 * 1024 * 1024 - 10}).text.endswith(
        "log truncated at 10485760 bytes]\n")


def test_rerun_original_and_latest(api, unique):
    deploy(api, f"ver-{unique}", "def main(x: int):\n    return ['v1', x]\n")
    first = run(api, f"ver-{unique}", {"x": 7})
    deploy(api, f"ver-{unique}", "def main(x: int):\n    return ['v2', x]\n")
    original = api.post(f"/runs/{first['id']}/rerun", params={"wait": 10}).json()
    latest = api.post(f"/runs/{first['id']}/rerun", params={"version": "latest", "wait": 10}).json()
    assert original["output"] == ["v1", 7] and original["trigger"] == "rerun"
    assert original["parent_run_id"] == first["id"]
    assert latest["output"] == ["v2", 7] and latest["tool_version"] == 2
    assert error_code(api.post(f"/runs/{first['id']}/rerun", params={"version": "newest"})) == "validation_error"
    assert error_code(api.post("/runs/run_nope/rerun")) == "run_not_found"


def test_artifacts_progress_and_files(server, api, unique):
    code = """
from pathlib import Path
from runyard import context
def main(data: Path, scale: int = 1):
    text = Path(data).read_text()
    context.progress(0.5, "halfway")
    context.trace("parsed", chars=len(text))
    out = Path(context.output_dir())
    (out / "report.txt").write_text(text.upper() * scale)
    (out / "sub").mkdir()
    (out / "sub" / "n.json").write_text('{"n": 1}')
    return len(text)
"""
    deploy(api, f"files-{unique}", code)
    r = api.post("/runs", params={"wait": 30}, data={"payload": json.dumps({"tool": f"files-{unique}",
                                                                         "inputs": {"scale": 2}})},
                 files={"data": ("in.txt", b"hello")})
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["status"] == "succeeded", result
    assert result["output"] == 5 and result["progress"]["message"] == "halfway"
    trace = api.get(f"/runs/{result['id']}/trace").json()["items"]
    assert [(t["name"], t["attrs"]["chars"]) for t in trace] == [("parsed", 5)]
    items = api.get(f"/runs/{result['id']}/artifacts").json()["items"]
    assert [a["path"] for a in items] == ["report.txt", "sub/n.json"]
    assert api.get(f"/runs/{result['id']}/artifacts/report.txt").content == b"HELLOHELLO"
    zipped = zipfile.ZipFile(io.BytesIO(api.get(f"/runs/{result['id']}/artifacts.zip").content))
    assert sorted(zipped.namelist()) == ["report.txt", "sub/n.json"]
    assert error_code(api.get(f"/runs/{result['id']}/artifacts/none.txt")) == "artifact_not_found"
    # The run's cwd (holding its input file) and output dir are gone once it has ended.
    work = server.data_dir / "work"
    deadline = time.monotonic() + 5
    while (work / result["id"]).exists() or (work / f"{result['id']}.out").exists():
        assert time.monotonic() < deadline, sorted(p.name for p in work.iterdir())
        time.sleep(0.05)

    # Confirmation gate: files uploaded before release.
    gated = api.post("/runs", json={"tool": f"files-{unique}", "requires_confirmation": True}).json()
    assert gated["status"] == "awaiting_confirmation"
    assert error_code(api.post(f"/runs/{gated['id']}/confirm")) == "invalid_inputs"
    up = api.post(f"/runs/{gated['id']}/files", files={"data": ("later.txt", b"abc")})
    assert up.status_code == 200 and up.json()["input_files"] == ["data"]
    assert api.post(f"/runs/{gated['id']}/confirm").json()["status"] in ("queued", "running", "succeeded")
    done = wait_status(api, gated["id"], TERMINAL)
    assert done["output"] == 3
    assert error_code(api.post(f"/runs/{gated['id']}/confirm")) == "invalid_state"


def test_list_filters_and_pages(api, unique):
    deploy(api, f"many-{unique}", "def main(i: int):\n    if i % 3 == 0:\n        raise ValueError(i)\n    return i\n")
    ids = [run(api, f"many-{unique}", {"i": i}, tags={"batch_id": f"b-{unique}"})["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"batch_id": f"b-{unique}", "limit": 2, "order": "asc"}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/runs", params=params).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    failed = api.get("/runs", params={"tool": f"many-{unique}", "status": "failed", "include_total": True}).json()
    assert failed["total"] == 3
    both = api.get("/runs", params=[("tool", f"many-{unique}"), ("status", "failed"), ("status", "succeeded")])
    assert len(both.json()["items"]) == 7
    assert error_code(api.get("/runs", params={"status": "exploded"})) == "validation_error"
    assert error_code(api.get("/runs", params={"limit": 1001})) == "invalid_limit"
    assert error_code(api.get("/runs", params={"created_after": "yesterday"})) == "validation_error"


@pytest.mark.parametrize("n", [8])
def test_concurrent_runs(server, api, unique, n):
    deploy(api, f"par-{unique}", "import time\ndef main(i: int):\n    time.sleep(0.3)\n    return i\n")
    results: list[dict] = []

    def one(i: int) -> None:
        with server.client() as own:  # a client per thread, as separate callers would have
            results.append(run(own, f"par-{unique}", {"i": i}))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["output"] for r in results) == list(range(n)), results
    assert time.monotonic() - started < 0.3 * n  # ran side by side, not one after another


def test_trigger_recorded(api, unique):
    deploy(api, f"trig-{unique}", "def main():\n    return 1\n")
    assert run(api, f"trig-{unique}")["trigger"] == "api"
    sdk = api.post("/runs", params={"wait": 10}, json={"tool": f"trig-{unique}"},
                   headers={"User-Agent": "runyard-python/0.1.0"}).json()
    assert sdk["trigger"] == "sdk"
    cli = api.post("/runs", json={"tool": f"trig-{unique}"}, headers={"X-Runyard-Trigger": "cli"}).json()
    assert cli["trigger"] == "cli"
    # An MCP client (`runyard mcp`) says so; runs a source starts (schedules, workflows,
    # email) cannot be claimed, and "rerun" is what POST /runs/{id}/rerun records.
    mcp = api.post("/runs", json={"tool": f"trig-{unique}"}, headers={"X-Runyard-Trigger": "mcp"}).json()
    assert mcp["trigger"] == "mcp"
    for value in ("telepathy", "schedule", "workflow", "email", "ui", "rerun"):
        bad = api.post("/runs", json={"tool": f"trig-{unique}"}, headers={"X-Runyard-Trigger": value})
        assert bad.status_code == 400 and error_code(bad) == "validation_error", value
        assert bad.json()["error"]["details"]["allowed"] == ["api", "sdk", "cli", "mcp"], value


def test_a_waited_run_is_the_run_as_stored(api, unique):
    """What a waiting caller gets at the run's end is what reading the run returns."""
    deploy(api, f"same-{unique}", "def main(x: int = 1):\n    print('hi')\n    return {'x': x}\n")
    for expand in (False, True):
        params = {"wait": 30, **({"expand": "inputs"} if expand else {})}
        waited = api.post("/runs", params=params, json={"tool": f"same-{unique}", "inputs": {"x": 3},
                                                       "tags": {"session": "s1"}}).json()
        assert waited["status"] == "succeeded"
        read = api.get(f"/runs/{waited['id']}", params={"expand": "inputs"} if expand else {}).json()
        assert waited == read


def test_tool_gets_default_signal_dispositions(api, unique):
    """The fork server ignores SIGINT/SIGTERM; a run (and what it starts) must not inherit that."""
    code = """
import signal, subprocess, sys
def ignored(status: str) -> int:
    return int(status.split("SigIgn:")[1].split()[0], 16)
def main():
    own = ignored(open("/proc/self/status").read())
    # A process the run starts cannot read its own /proc entry (the sandbox allows only the
    # run's): it reports what it inherited itself.
    probe = "import signal; print(sum(signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGTERM, signal.SIGINT)))"
    child = int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout)
    term, intr = 1 << (signal.SIGTERM - 1), 1 << (signal.SIGINT - 1)
    return [own & (term | intr), child]
"""
    deploy(api, f"sigs-{unique}", code)
    assert run(api, f"sigs-{unique}")["output"] == [0, 0]


def test_traceback_names_the_tool_file(api, unique):
    deploy(api, f"tb-{unique}", "def main():\n    raise KeyError('k')\n")
    error = run(api, f"tb-{unique}")["error"]
    assert error["type"] == "KeyError"
    assert 'main.py", line 2, in main' in error["traceback"] and ".tmp-" not in error["traceback"]

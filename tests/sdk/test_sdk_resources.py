"""Every SDK resource method against a real server on loopback."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runyard import (
    AuthenticationError,
    Client,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RunFailedError,
    ValidationError,
    WaitTimeoutError,
)
from runyard.sdk.models import Artifact, Run, Secret, Token, Tool, ToolVersion
from tests.support.sdk import ADD_CODE, FAIL_CODE

SLEEP_CODE = '''
import time

def main(seconds: float = 30.0) -> str:
    time.sleep(seconds)
    return "woke"
'''

ARTIFACT_CODE = '''
import os

def main(text: str = "hello") -> int:
    out = os.environ["RUNYARD_OUTPUT_DIR"]
    os.makedirs(os.path.join(out, "sub"), exist_ok=True)
    with open(os.path.join(out, "sub", "greeting.txt"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "top.json"), "w") as fh:
        fh.write('{"ok": true}')
    return len(text)
'''

FILE_INPUT_CODE = '''
def main(data: str, suffix: str = "!") -> str:
    with open(data) as fh:
        return fh.read().upper() + suffix
'''


def add_numbers(a: int, b: int = 10) -> int:
    return a + b


def test_deploy_kinds_and_tool_reads(client: Client, unique: str, tmp_path: Path) -> None:
    # A string.
    t = client.tools.deploy(ADD_CODE, name=f"str-{unique}", description="adds")
    assert isinstance(t, Tool) and t.name == f"str-{unique}" and t.version == 1 and t.id.startswith("tool_")
    assert t.description == "adds"
    assert set(t.input_schema["properties"]) >= {"a", "b"}  # type: ignore[index]

    # A function object: its name is the default entrypoint; we give the tool a unique name.
    t = client.tools.deploy(add_numbers, name=f"fn-{unique}")
    assert t.entrypoint == "add_numbers"
    assert client.tools.run(t.name, {"a": 5}).output == 15

    # A .py file.
    f = tmp_path / f"file_{unique}.py"
    f.write_text(ADD_CODE)
    t = client.tools.deploy(f)
    assert t.name == f"file_{unique}"
    assert client.tools.run(t.name, {"a": 1, "b": 1}).output == 2

    # A package directory, zipped on the fly.
    pkg = tmp_path / f"pkg-{unique}"
    (pkg / "helpers").mkdir(parents=True)
    (pkg / "helpers" / "__init__.py").write_text("")
    (pkg / "helpers" / "maths.py").write_text("def triple(x):\n    return 3 * x\n")
    (pkg / "main.py").write_text("from helpers.maths import triple\n\ndef main(x: int) -> int:\n    return triple(x)\n")
    t = client.tools.deploy(pkg, requirements=[])
    assert t.name == f"pkg-{unique}"
    assert client.tools.run(t.name, {"x": 4}).output == 12

    # get by name and by id; update makes a version; versions list and one version.
    by_name = client.tools.get(f"str-{unique}")
    assert client.tools.get(by_name.id).name == by_name.name
    updated = client.tools.update(by_name.name, code=ADD_CODE.replace("a + b", "a + b + 100"))
    assert updated.version == 2
    versions = list(client.tools.versions(by_name.name))
    assert sorted(v.version for v in versions) == [1, 2]
    assert all(isinstance(v, ToolVersion) for v in versions)
    v1 = client.tools.get_version(by_name.name, 1)
    assert v1.version == 1 and v1.code_sha256
    assert client.tools.run(by_name.name, {"a": 1, "b": 1}).output == 102
    assert client.tools.run(by_name.name, {"a": 1, "b": 1}, version=1).output == 2
    reused = client.tools.update(by_name.name, reuse_process=True)
    assert reused.version == 3 and reused.reuse_process is True and v1.reuse_process is False
    assert client.tools.run(by_name.name, {"a": 1, "b": 1}).output == 102

    # list with search finds it; delete hides it.
    found = [x.name for x in client.tools.list(search=unique)]
    assert f"str-{unique}" in found
    client.tools.delete(by_name.name)
    with pytest.raises(NotFoundError) as exc:
        client.tools.get(by_name.name)
    assert exc.value.request_id


def test_run_lifecycle(client: Client, add_tool: str) -> None:
    run = client.runs.create(add_tool, {"a": 2, "b": 3}, tags={"session": "s1", "project": "p"}, wait=30)
    assert isinstance(run, Run) and run.status == "succeeded" and run.output == 5
    assert run.tags and run.tags["session"] == "s1"
    got = client.runs.get(run.id, include_inputs=True)
    assert got.inputs == {"a": 2, "b": 3}
    assert "adding 2 and 3" in client.runs.logs(run.id)

    queued = client.runs.create(add_tool, {"a": 1})
    assert queued.id.startswith("run_")
    finished = client.runs.wait(queued, timeout=30)
    assert finished.output == 3

    rerun = client.runs.rerun(run.id)
    assert rerun.id != run.id
    assert client.runs.wait(rerun.id, timeout=30).output == 5
    latest = client.runs.rerun(run, version="latest", wait=30)
    assert latest.status == "succeeded" and latest.parent_run_id == run.id

    listed = [r.id for r in client.runs.list(tool=add_tool, status=["succeeded"], session="s1")]
    assert run.id in listed and queued.id not in listed


def test_wait_many_in_input_order(client: Client, add_tool: str) -> None:
    runs = [client.runs.create(add_tool, {"a": i}) for i in range(5)]
    ids = [r.id for r in reversed(runs)]
    done = client.runs.wait(ids, timeout=60)
    assert [r.id for r in done] == ids
    assert [r.output for r in done] == [i + 2 for i in reversed(range(5))]


def test_failed_run_and_raise_on_failure(client: Client, unique: str) -> None:
    name = f"fail-{unique}"
    client.tools.deploy(FAIL_CODE, name=name)
    run = client.tools.run(name, {"x": 7})
    assert run.status == "failed" and run.error is not None
    assert "boom 7" in (run.error.message or "")
    with pytest.raises(RunFailedError) as exc:
        client.tools.run(name, raise_on_failure=True)
    assert exc.value.run.status == "failed"
    with pytest.raises(RunFailedError):
        client.runs.wait(run.id, raise_on_failure=True)


def test_wait_timeout_then_cancel(client: Client, unique: str) -> None:
    name = f"sleep-{unique}"
    client.tools.deploy(SLEEP_CODE, name=name)
    run = client.runs.create(name, {"seconds": 30})
    with pytest.raises(WaitTimeoutError) as exc:
        client.runs.wait(run, timeout=0.5)
    assert isinstance(exc.value, TimeoutError)
    assert exc.value.runs[0].id == run.id and not exc.value.runs[0].is_terminal
    cancelled = client.runs.cancel(run)
    assert client.runs.wait(cancelled, timeout=10).status == "cancelled"
    # Cancelling a finished run returns it as it is.
    assert client.runs.cancel(run).status == "cancelled"


def test_confirmation_gate_and_file_upload(client: Client, unique: str, tmp_path: Path) -> None:
    name = f"upper-{unique}"
    client.tools.deploy(FILE_INPUT_CODE, name=name)
    data = tmp_path / "in.txt"
    data.write_text("abc")
    # Path inputs travel as multipart file parts.
    assert client.tools.run(name, {"data": data}).output == "ABC!"

    gated = client.runs.create(name, {"suffix": "?"}, requires_confirmation=True)
    assert gated.status == "awaiting_confirmation"
    client.runs.files.upload(gated, {"data": data})
    confirmed = client.runs.confirm(gated)
    assert confirmed.status in ("queued", "running", "succeeded")
    assert client.runs.wait(gated, timeout=30).output == "ABC?"


def test_artifacts(client: Client, unique: str, tmp_path: Path) -> None:
    name = f"art-{unique}"
    client.tools.deploy(ARTIFACT_CODE, name=name)
    run = client.tools.run(name, {"text": "hi there"})
    assert run.status == "succeeded", run.error
    arts = client.runs.artifacts.list(run)
    assert sorted(a.path for a in arts) == ["sub/greeting.txt", "top.json"]
    assert all(isinstance(a, Artifact) and a.size for a in arts)
    assert client.runs.artifacts.download(run, "sub/greeting.txt") == b"hi there"
    (tmp_path / "dl").mkdir()
    written = client.runs.artifacts.download(run, "sub/greeting.txt", tmp_path / "dl")
    assert written == tmp_path / "dl" / "sub" / "greeting.txt"
    assert written.read_bytes() == b"hi there"
    named = client.runs.artifacts.download(run, "top.json", tmp_path / "renamed.json")
    assert named == tmp_path / "renamed.json" and named.read_bytes() == b'{"ok": true}'
    with pytest.raises(ValueError, match="unsafe"):
        client.runs.artifacts.download(run, "../escape.txt", tmp_path / "dl")
    zpath = client.runs.artifacts.download_zip(run, tmp_path)
    assert sorted(zipfile.ZipFile(zpath).namelist()) == ["sub/greeting.txt", "top.json"]
    assert zipfile.ZipFile(io.BytesIO(client.runs.artifacts.download_zip(run))).read("top.json") == b'{"ok": true}'


def test_secrets(client: Client, unique: str) -> None:
    name = f"SEC_{unique.upper()}"
    s = client.secrets.set(name, "hunter2-value", description="test", category="db")
    assert isinstance(s, Secret) and s.name == name
    assert "hunter2-value" not in (s.masked_value or "")
    with pytest.raises(ConflictError) as exc:
        client.secrets.set(name, "other")
    assert exc.value.code and exc.value.request_id
    client.secrets.set(name, "other-value", force=True)
    listed = {x.name: x for x in client.secrets.list()}
    assert name in listed and "other-value" not in listed[name].to_json()
    client.secrets.delete(name)
    assert name not in {x.name for x in client.secrets.list()}
    with pytest.raises(NotFoundError):
        client.secrets.delete(name)


def test_tokens_roles_and_restrictions(client: Client, server: Any, add_tool: str, unique: str) -> None:
    viewer = client.tokens.create(f"viewer-{unique}", role="viewer")
    assert isinstance(viewer, Token) and viewer.key and viewer.id.startswith("tok_")
    assert client.tokens.get(viewer.id).key is None  # shown once
    assert viewer.id in {t.id for t in client.tokens.list()}
    with Client(api_key=viewer.key, base_url=server.base_url) as as_viewer:
        assert as_viewer.tools.get(add_tool).name == add_tool
        with pytest.raises(PermissionDeniedError) as exc:
            as_viewer.tools.deploy(ADD_CODE, name=f"nope-{unique}")
        assert exc.value.status == 403 and exc.value.request_id

    restricted = client.tokens.create(f"restricted-{unique}", role="member", tools=[add_tool])
    assert restricted.restrictions is not None and restricted.restrictions.tools == [add_tool]
    with Client(api_key=restricted.key, base_url=server.base_url) as as_restricted:
        assert as_restricted.tools.run(add_tool, {"a": 1}).output == 3
        other = f"other-{unique}"
        client.tools.deploy(ADD_CODE, name=other)
        with pytest.raises(NotFoundError):  # a tool hidden from the key is as if absent
            as_restricted.runs.create(other, {"a": 1})

    client.tokens.delete(viewer.id)
    with Client(api_key=viewer.key, base_url=server.base_url, max_retries=0) as revoked:
        with pytest.raises(AuthenticationError) as exc2:
            revoked.tools.list()
        assert exc2.value.status == 401 and exc2.value.request_id


def test_validation_error_carries_field_errors(client: Client, add_tool: str) -> None:
    with pytest.raises(ValidationError) as exc:
        client.runs.create(add_tool, {"a": "not a number"})
    err = exc.value
    assert err.status == 400 and err.request_id
    assert any("a" in str(e.get("field", "")) for e in err.errors), err.details
    with pytest.raises(ValidationError):
        client.tools.deploy("def main(:\n    pass\n", name="broken-syntax")


def test_health(client: Client) -> None:
    assert client.health()["status"] == "ok"
    assert client.ready()["status"] == "ready"

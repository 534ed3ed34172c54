"""A tool that declares a secret and leaks it every way a run reports something: the
secret's value never reaches what the server stores or serves (output, error, log,
progress, trace, artifact names, text artifacts' contents, the artifacts zip)."""

from __future__ import annotations

import hashlib
import io
import secrets
import zipfile

import httpx

from tests.support.api import deploy, run

LEAKY = '''
import os
from pathlib import Path
from runyard import context

def main(mode: str = "ok"):
    value = os.environ["{name}"]
    print("log:", value)
    context.progress(0.5, f"working with {{value}} now")
    context.trace("step", key=value)
    out = Path(context.output_dir())
    (out / f"report-{{value}}.txt").write_text(f"token={{value}}\\n")
    (out / "data.json").write_text('{{"key": "' + value + '"}}')
    (out / "notes").write_text("no extension, still text: " + value)
    # A secret split across the reader's 1 MiB chunks.
    (out / "big.log").write_text("x" * ((1 << 20) - 5) + value + "y" * 10)
    (out / "sub").mkdir()
    (out / "sub" / f"{{value}}.csv").write_text(f"a,b\\n1,{{value}}\\n")
    if mode == "fail":
        raise RuntimeError(f"failed holding {{value}}")
    return {{"echo": value, value: 1}}
'''


def _setup(api: httpx.Client, unique: str) -> tuple[str, str]:
    name, value = f"LEAK_{unique}", "s3cr3t-" + secrets.token_hex(12)
    assert api.put(f"/secrets/{name}", json={"value": value}).status_code in (200, 201)
    tool = f"leaky-{unique}"
    deploy(api, tool, LEAKY.format(name=name), required_secrets=[name])
    return tool, value


def test_a_leaked_secret_is_redacted_from_progress_and_artifacts(api: httpx.Client, unique: str) -> None:
    tool, value = _setup(api, unique)
    done = run(api, tool)
    assert done["status"] == "succeeded", done
    run_id = done["id"]
    assert value not in str(done)
    assert done["output"] == {"echo": "***", "***": 1}
    assert done["progress"]["message"] == "working with *** now"
    assert value not in api.get(f"/runs/{run_id}").text
    assert value not in api.get(f"/runs/{run_id}/logs").text
    trace = api.get(f"/runs/{run_id}/trace")
    assert trace.status_code == 200 and value not in trace.text
    assert trace.json()["items"][0]["attrs"]["key"] == "***"

    listing = api.get(f"/runs/{run_id}/artifacts")
    assert listing.status_code == 200 and value not in listing.text
    items = {a["path"]: a for a in listing.json()["items"]}
    assert set(items) == {"report-***.txt", "data.json", "notes", "big.log", "sub/***.csv"}
    served = {}
    for path, item in items.items():
        response = api.get(f"/runs/{run_id}/artifacts/{path}")
        assert response.status_code == 200, (path, response.text)
        assert value.encode() not in response.content, path
        # What is listed describes what is served.
        assert item["size"] == len(response.content), path
        assert item["sha256"] == hashlib.sha256(response.content).hexdigest(), path
        served[path] = response.content
    assert served["report-***.txt"] == b"token=***\n"
    assert served["data.json"] == b'{"key": "***"}'
    assert served["notes"] == b"no extension, still text: ***"
    assert served["big.log"] == b"x" * ((1 << 20) - 5) + b"***" + b"y" * 10
    assert served["sub/***.csv"] == b"a,b\n1,***\n"

    archive = api.get(f"/runs/{run_id}/artifacts.zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert sorted(zf.namelist()) == sorted(items)
        for member in zf.namelist():
            assert value.encode() not in zf.read(member), member


def test_a_leaked_secret_is_redacted_from_a_failed_run(api: httpx.Client, unique: str) -> None:
    tool, value = _setup(api, unique)
    failed = run(api, tool, {"mode": "fail"})
    assert failed["status"] == "failed", failed
    assert value not in str(failed)
    assert "failed holding ***" in failed["error"]["message"]
    assert failed["progress"]["message"] == "working with *** now"
    listing = api.get(f"/runs/{failed['id']}/artifacts").json()["items"]
    assert {a["path"] for a in listing} >= {"report-***.txt", "sub/***.csv"}
    assert api.get(f"/runs/{failed['id']}/artifacts/report-***.txt").content == b"token=***\n"


def test_a_tool_without_secrets_keeps_its_artifacts_as_written(api: httpx.Client, unique: str) -> None:
    deploy(api, f"plain-{unique}", '''
from pathlib import Path
from runyard import context

def main():
    (Path(context.output_dir()) / "a.txt").write_text("*** stays as written")
    return 1
''')
    done = run(api, f"plain-{unique}")
    assert done["status"] == "succeeded", done
    assert api.get(f"/runs/{done['id']}/artifacts/a.txt").content == b"*** stays as written"

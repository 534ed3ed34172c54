"""``client.files`` (sync and async) and ``runyard files put|get|ls|rm`` against the real
server (issue 18): uploads from a path, a file object and bytes; downloads to memory and
streamed to disk with progress; the errors a script sees."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import runyard.cli.files as cli_files
from runyard.cli.main import app
from runyard.sdk import AsyncClient, Client
from runyard.sdk.errors import ConflictError, RunyardError


@pytest.fixture
def client(server: Any) -> Client:
    with Client(api_key=server.admin_key, base_url=server.base_url, timeout=60) as c:
        yield c


def test_sdk_upload_list_download_delete(client, unique, tmp_path):
    source = tmp_path / f"data-{unique}.csv"
    source.write_bytes(b"a,b\n" + b"1,2\n" * 100_000)
    seen: list[tuple[int, int | None]] = []
    stored = client.files.upload(source, progress=lambda done, total: seen.append((done, total)))
    assert stored.name == f"data-{unique}.csv" and stored.size == source.stat().st_size
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest() and stored.content_type == "text/csv"
    assert seen and seen[-1] == (stored.size, stored.size)

    with pytest.raises(ConflictError) as conflict:
        client.files.upload(source)
    assert conflict.value.code == "file_exists"
    replaced = client.files.upload(io.BytesIO(b"x,y\n"), f"data-{unique}.csv", overwrite=True)
    assert replaced.size == 4 and replaced.id == stored.id
    assert client.files.upload(b"raw", f"raw-{unique}.bin").content_type == "application/octet-stream"

    names = [f.name for f in client.files.list(prefix=f"data-{unique}")]
    assert names == [f"data-{unique}.csv"]
    assert client.files.download(f"data-{unique}.csv") == b"x,y\n"
    out = client.files.download(f"raw-{unique}.bin", tmp_path / "dl")
    assert out == tmp_path / "dl" and out.read_bytes() == b"raw"
    (tmp_path / "dir").mkdir()
    progress: list[int] = []
    into = client.files.download(f"raw-{unique}.bin", tmp_path / "dir", progress=lambda d, t: progress.append(d))
    assert into == tmp_path / "dir" / f"raw-{unique}.bin" and progress[-1] == 3

    buffer = io.BytesIO()
    assert client.files.download(f"raw-{unique}.bin", buffer) == 3 and buffer.getvalue() == b"raw"

    client.files.delete(f"raw-{unique}.bin")
    with pytest.raises(RunyardError) as missing:
        client.files.download(f"raw-{unique}.bin")
    assert missing.value.code == "file_not_found"
    with pytest.raises(RunyardError) as bad:
        client.files.upload(b"x", "../escape")
    assert bad.value.code == "invalid_file_name"
    usage = client.files.usage()
    assert usage.used_bytes >= 4 and usage.by_kind["files"] >= 4


def test_async_client(server, unique, tmp_path):
    async def scenario() -> None:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url, timeout=60) as c:
            path = tmp_path / "a.txt"
            path.write_bytes(b"async bytes")
            with path.open("rb") as fh:
                stored = await c.files.upload(fh, f"async-{unique}.txt")
            assert stored.size == 11 and stored.content_type == "text/plain"
            assert [f.name async for f in c.files.list(prefix=f"async-{unique}")] == [f"async-{unique}.txt"]
            assert await c.files.download(f"async-{unique}.txt") == b"async bytes"
            written = await c.files.download(f"async-{unique}.txt", tmp_path / "out.txt")
            assert written.read_bytes() == b"async bytes"
            await c.files.delete(f"async-{unique}.txt")

    asyncio.run(scenario())


def test_cli_put_get_ls_rm(server, unique, tmp_path, monkeypatch):
    runner = CliRunner()
    env = {"RUNYARD_CONFIG": str(tmp_path / "cfg.json"), "COLUMNS": "250", "RUNYARD_PROFILE": None,
           "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key}

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024))
    monkeypatch.setattr(cli_files, "_wants_bar", lambda size, quiet: not quiet)  # draw the bar off a terminal too
    put = invoke("files", "put", str(local), f"big-{unique}.bin", "--json")
    assert put.exit_code == 0, put.output
    assert json.loads(put.stdout)["size"] == local.stat().st_size

    again = invoke("files", "put", str(local), f"big-{unique}.bin")
    assert again.exit_code == 1 and "file_exists" in again.stderr
    assert invoke("files", "put", str(local), f"big-{unique}.bin", "--overwrite", "-q").exit_code == 0

    listed = invoke("files", "ls", f"big-{unique}")
    assert listed.exit_code == 0 and f"big-{unique}.bin" in listed.stdout
    assert [f["name"] for f in json.loads(invoke("files", "ls", f"big-{unique}", "--json").stdout)] == [
        f"big-{unique}.bin"]

    target = tmp_path / "copy.bin"
    got = invoke("files", "get", f"big-{unique}.bin", str(target))
    assert got.exit_code == 0, got.output
    assert target.read_bytes() == local.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert invoke("files", "get", f"big-{unique}.bin", "-q").exit_code == 0
    assert Path(tmp_path / f"big-{unique}.bin").read_bytes() == local.read_bytes()

    to_stdout = invoke("files", "get", f"big-{unique}.bin", "-")
    assert to_stdout.exit_code == 0 and to_stdout.stdout_bytes == local.read_bytes()

    assert invoke("files", "rm", f"big-{unique}.bin").exit_code == 0
    missing = invoke("files", "get", f"big-{unique}.bin", str(target))
    assert missing.exit_code == 1 and "file_not_found" in missing.stderr


def test_tools_declare_files_from_the_sdk_and_the_cli(server, client, unique, tmp_path):
    client.files.upload(b"hello from a file", f"greeting-{unique}.txt")
    code = "from runyard import context\n\ndef main() -> str:\n" \
           f"    return context.files.read_bytes('greeting-{unique}.txt').decode()\n"
    tool = client.tools.deploy(code, name=f"greeter-{unique}", files=[f"greeting-{unique}.txt"])
    assert tool.files == [f"greeting-{unique}.txt"]
    assert client.tools.run(tool.name, {}).output == "hello from a file"
    assert client.tools.update(tool.name, files=[]).files == []

    source = tmp_path / "greeter.py"
    source.write_text(code)
    result = CliRunner().invoke(app, ["deploy", str(source), "--name", f"cli-greeter-{unique}", "--workspace-file",
                                      f"greeting-{unique}.txt", "--json"],
                                env={"RUNYARD_CONFIG": str(tmp_path / "cfg.json"), "RUNYARD_PROFILE": None,
                                     "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == [f"greeting-{unique}.txt"]

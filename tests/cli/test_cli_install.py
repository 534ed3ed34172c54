"""The CLI and SDK work without the server side: through the real entry point, with
server packages made unimportable, and from a fresh venv without the server extra."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_blocked

REPO = Path(__file__).resolve().parents[2]

def test_sdk_and_cli_import_without_server_packages() -> None:
    r = run_blocked(
        "import runyard, runyard.sdk\n"
        "from runyard import Client, AsyncClient, NotFoundError\n"
        "assert not any(m.startswith(('fastapi', 'sqlalchemy', 'runyard.api', 'runyard.store')) for m in sys.modules)\n"
        "print('ok')\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_cli_help_without_server_packages() -> None:
    code = "from runyard.cli.main import app\nsys.argv = ['runyard', *sys.argv[1:]]\napp()\n"
    r = run_blocked(code, "--help")
    assert r.returncode == 0, r.stderr
    assert "deploy" in r.stdout and "run" in r.stdout
    r = run_blocked(code, "runs", "--help")
    assert r.returncode == 0 and "logs" in r.stdout
    # The server commands explain what is missing instead of crashing.
    r = run_blocked(code, "up")
    assert r.returncode == 1
    assert "runyard[server]" in r.stderr and "Traceback" not in r.stderr


def _entry_point() -> list[str]:
    script = Path(sys.executable).with_name("runyard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "runyard.cli.main"]


@pytest.mark.slow
def test_entry_point_failing_run_exit_code(server: Any, tmp_path: Path, unique: str) -> None:
    env = {**os.environ, "RUNYARD_BASE_URL": server.base_url, "RUNYARD_API_KEY": server.admin_key,
           "RUNYARD_CONFIG": str(tmp_path / "c.json")}
    tool = tmp_path / f"boom_{unique}.py"
    tool.write_text("def main():\n    raise RuntimeError('kaboom')\n")
    r = subprocess.run([*_entry_point(), "deploy", str(tool), "--json"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*_entry_point(), "run", f"boom_{unique}"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 3
    assert "kaboom" in r.stderr
    r = subprocess.run([*_entry_point(), "run", f"boom_{unique}", "--json"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 3
    import json

    assert json.loads(r.stdout)["status"] == "failed"


def _uv() -> str | None:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    return found if Path(found).exists() else None


@pytest.mark.timeout(600)
def test_fresh_venv_without_server_extra(tmp_path: Path) -> None:
    """``pip install .`` (here: ``uv pip install --offline``, from the local cache) gives a
    working ``runyard --help`` and ``import runyard`` with no server packages present."""
    uv = _uv()
    if uv is None:  # uv ships in the test extra; only a hand-made environment lacks it
        pytest.skip("uv is not available")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([uv, "pip", "install", "--offline", "-q", "-p", str(py), str(REPO)], capture_output=True,
                       text=True, timeout=500)
    if r.returncode != 0:
        if "offline" in r.stderr.lower() or "network" in r.stderr.lower():
            # Tests never download; scripts/test.sh installs with uv first, so its cache has
            # every dependency and this only skips outside that set-up.
            pytest.skip(f"dependencies not in the local uv cache: {r.stderr.strip()[-300:]}")
        raise AssertionError(r.stderr)
    r = subprocess.run([str(venv / "bin" / "runyard"), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "deploy" in r.stdout
    r = subprocess.run(
        [str(py), "-c", "import runyard, importlib.util as u; from runyard import Client; "
                        "assert u.find_spec('fastapi') is None and u.find_spec('sqlalchemy') is None; print('ok')"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


SERVER_MODULES = ("runyard.api", "runyard.services", "runyard.engine", "runyard.store", "runyard.wiring",
                  "runyard.config", "runyard.node", "fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic")


def test_sdk_source_never_imports_the_server() -> None:
    """Not even lazily inside a function: the SDK must work with only its own dependencies."""
    import ast

    offenders = []
    src = REPO / "src"
    for path in sorted((src / "runyard" / "sdk").rglob("*.py")):
        package = list(path.relative_to(src).with_suffix("").parts)[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                names = [".".join([*base, *([node.module] if node.module else [])])]
                if not node.module:  # from .. import x: x may itself be a module
                    names = [".".join([*base, a.name]) for a in node.names]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names
                          if n.startswith(SERVER_MODULES)]
    assert offenders == []

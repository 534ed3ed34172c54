"""For the CLI tests: the runner type, its JSON output, and code run with the server
packages made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

Invoke = Callable[..., Result]


def as_json(result: Result) -> Any:
    """The whole of stdout must be one JSON document."""
    return json.loads(result.stdout)


REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = ("fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "psycopg", "duckdb", "pyarrow",
               "runyard.api", "runyard.services", "runyard.engine", "runyard.store")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked for this test: {name}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter in which the server packages cannot be imported."""
    return subprocess.run([sys.executable, "-c", BLOCKER + code, *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)

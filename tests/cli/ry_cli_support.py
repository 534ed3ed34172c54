"""Helpers shared by the CLI tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import Result

Invoke = Callable[..., Result]


def as_json(result: Result) -> Any:
    """The whole of stdout must be one JSON document."""
    return json.loads(result.stdout)

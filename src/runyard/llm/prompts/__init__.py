"""Prompt files, loaded by name (``load_prompt("nl_to_sql.system")`` reads
``nl_to_sql.system.txt`` from this package). Placeholders are ``$name`` (string.Template)
so JSON braces in a prompt need no escaping."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template

SUFFIX = ".txt"


@cache
def load_prompt(name: str) -> str:
    """The text of prompt ``name``; FileNotFoundError for an unknown one."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise FileNotFoundError(f"no prompt named {name!r}")
    path = resources.files(__name__).joinpath(name + SUFFIX)
    if not path.is_file():
        raise FileNotFoundError(f"no prompt named {name!r}")
    return path.read_text(encoding="utf-8")


def render_prompt(name: str, **values: object) -> str:
    """Prompt ``name`` with its ``$placeholders`` filled (KeyError for one not given)."""
    return Template(load_prompt(name)).substitute({k: str(v) for k, v in values.items()})

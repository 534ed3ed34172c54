"""What ``runyard deploy`` reads from a ``.py`` file before sending it: which function to
call when ``--entrypoint`` is not given, and the description its docstring gives.

Parsed with ``ast`` only; the file is never imported on the client.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import typer

DEFAULT_ENTRYPOINT = "main"


@dataclass(frozen=True)
class EntryGuess:
    entrypoint: str | None  # None: leave the server's default (main)
    description: str | None  # the entry function's docstring summary


def public_functions(tree: ast.Module) -> list[str]:
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")]


def docstring_summary(doc: str | None) -> str | None:
    """The first paragraph of a docstring, on one line."""
    if not doc:
        return None
    para: list[str] = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        para.append(line.strip())
    return " ".join(para) or None


def guess_entry(path: Path, entrypoint: str | None) -> EntryGuess:
    """The entry function of a single-file tool: the given one, else ``main``, else the
    file's only public top-level function; several without ``main`` is a usage error
    that names them and the flag."""
    if path.suffix != ".py" or not path.is_file():
        return EntryGuess(entrypoint, None)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return EntryGuess(entrypoint, None)  # the server reports it, with the line
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    chosen = entrypoint
    if chosen is None and DEFAULT_ENTRYPOINT not in functions:
        public = public_functions(tree)
        if len(public) == 1:
            chosen = public[0]
        elif public:
            raise typer.BadParameter(
                f"{path.name} has no `main` and defines {len(public)} functions ({', '.join(public)}); "
                f"say which one the tool calls, e.g. --entrypoint {public[0]}", param_hint="'--entrypoint'")
        else:
            raise typer.BadParameter(f"{path.name} defines no top-level function for the tool to call",
                                     param_hint="PATH")
    node = functions.get(chosen or DEFAULT_ENTRYPOINT)
    return EntryGuess(chosen, docstring_summary(ast.get_docstring(node)) if node is not None else None)

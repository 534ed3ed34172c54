"""Every error code the API can answer, and every error type a run can end with, is in
docs/errors.md: the codes are collected from the source (the error classes' ``code``
attributes, ``code=`` arguments, the envelope helpers' literal codes, the HTTP status
map; the engine's and workers' error types) and compared with the doc's tables."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "runyard"
DOC = ROOT / "docs" / "errors.md"

# Envelope helpers taking a literal code: the position of the code among their arguments.
_CODE_ARG = {"error_response": 2, "error_payload": 1}
# Calls whose first argument is a run's error type.
_RUN_TYPE_CALLS = {"_failure", "failed", "ToolError"}
# Where runs' error dicts ({"type": …, "message": …}) are made.
_RUN_ERROR_MODULES = ("engine", "services/runs.py", "worker")


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _str(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(), filename=str(path))


def api_codes_in_source() -> dict[str, set[str]]:
    """code → the modules it is raised or returned in."""
    found: dict[str, set[str]] = {}

    def add(code: str | None, where: str) -> None:
        if code is not None:
            found.setdefault(code, set()).add(where)

    for where, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "code":
                        add(_str(kw.value), where)
                position = _CODE_ARG.get(_name(node.func) or "")
                if position is not None and len(node.args) > position:
                    add(_str(node.args[position]), where)
                # _HTTP_CODES.get(status, "<fallback code>")
                if (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                        and _name(node.func.value) == "_HTTP_CODES" and len(node.args) == 2):
                    add(_str(node.args[1]), where)
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:  # class-level ``code = "…"`` of an error class
                    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                            and _name(stmt.targets[0]) == "code"):
                        add(_str(stmt.value), where)
            elif isinstance(node, ast.Assign) and any(_name(t) == "_HTTP_CODES" for t in node.targets):
                assert isinstance(node.value, ast.Dict)
                for value in node.value.values:
                    add(_str(value), where)
    return found


def run_error_types_in_source() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for where, tree in _modules():
        if not where.startswith(_RUN_ERROR_MODULES):
            continue
        for node in ast.walk(tree):
            kind = None
            if isinstance(node, ast.Call) and _name(node.func) in _RUN_TYPE_CALLS and node.args:
                kind = _str(node.args[0])
            elif isinstance(node, ast.Dict):
                keys = [_str(k) for k in node.keys if k is not None]
                if "type" in keys and "message" in keys:
                    kind = _str(node.values[keys.index("type")])
            if kind is not None:
                found.setdefault(kind, set()).add(where)
    return found


def documented() -> tuple[set[str], set[str]]:
    """(API codes, run error types): the backticked names in the doc's table rows, the
    run types from the "Run error types" section."""
    text = DOC.read_text()
    head, _, rest = text.partition("## Run error types")
    run_section, _, tail = rest.partition("\n## ")

    def names(section: str) -> set[str]:
        """The backticked names in the "code" (or "type") column of the section's tables."""
        found: set[str] = set()
        column = None
        for line in section.splitlines():
            if not line.startswith("|"):
                column = None  # a table ended
                continue
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if column is None:  # a table's header row
                column = next((i for i, cell in enumerate(cells) if cell in ("code", "type")), -1)
            elif column >= 0 and len(cells) > column:
                found.update(re.findall(r"`([a-z][a-z0-9_]*)`", cells[column]))
        return found

    return names(head) | names(tail), names(run_section)


def test_the_collectors_find_what_they_should() -> None:
    """The collectors see each way a code is written (so the comparison below means something)."""
    api = api_codes_in_source()
    for code in ("bad_request", "validation_error", "method_not_allowed", "invalid_cursor", "internal_error",
                 "tool_not_found"):
        assert code in api, code
    runs = run_error_types_in_source()
    for kind in ("timeout", "process_crashed", "executor_error", "worker_lost", "worker_shutdown",
                 "exit_code", "import_error", "environment_build_failed", "output_not_serializable"):
        assert kind in runs, kind
    assert "result" not in runs and "object" not in runs  # not error dicts


def test_every_api_error_code_is_documented() -> None:
    doc_codes, _ = documented()
    missing = {code: sorted(where) for code, where in api_codes_in_source().items() if code not in doc_codes}
    assert not missing, f"error codes missing from docs/errors.md: {missing}"


def test_every_run_error_type_is_documented() -> None:
    _, doc_types = documented()
    missing = {kind: sorted(where) for kind, where in run_error_types_in_source().items() if kind not in doc_types}
    assert not missing, f"run error types missing from docs/errors.md: {missing}"


def test_the_doc_check_fails_for_a_missing_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Take documented codes out of a copy of the doc: the comparisons report them."""
    doc = tmp_path / "errors.md"
    doc.write_text(DOC.read_text().replace("`method_not_allowed`", "`method_refused`")
                   .replace("`executor_error`", "`engine_error`"))
    monkeypatch.setitem(globals(), "DOC", doc)
    with pytest.raises(AssertionError, match="method_not_allowed"):
        test_every_api_error_code_is_documented()
    with pytest.raises(AssertionError, match="executor_error"):
        test_every_run_error_type_is_documented()

"""Loading a definition's YAML/JSON text into JSON values while remembering where each came from.

``yaml.compose`` keeps every node's start mark; we build the Python values from the node tree
ourselves so each path (``("steps", 2, "with", "n")``) maps to a line and column, duplicate
keys are caught (PyYAML silently keeps the last one), and alias bombs or recursive anchors
are refused instead of expanded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Issue", "Path", "Position", "SourceMap", "WorkflowError", "format_path", "load_text"]

Path = tuple[str | int, ...]

MAX_SOURCE_CHARS = 1_000_000
MAX_NODES = 200_000  # values after alias expansion
MAX_NESTING = 100

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Path) -> str:
    """``("steps", 2, "with", "n")`` -> ``steps[2].with.n``."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _IDENT.match(key):
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out


@dataclass(frozen=True)
class Issue:
    """One problem in a definition. ``line``/``column`` are 1-based, None for dict input."""

    code: str
    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path, "line": self.line,
                "column": self.column}

    def __str__(self) -> str:
        where = self.path or "definition"
        if self.line is not None:
            where += f" (line {self.line}, column {self.column})"
        return f"{where}: {self.message} [{self.code}]"


class WorkflowError(ValueError):
    """A definition that did not validate; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = list(issues)
        first = str(self.issues[0]) if self.issues else "invalid workflow"
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(first + more)


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based
    style: str | None = None  # scalar style: None (plain), "'", '"', "|", ">"
    single_line: bool = True


@dataclass
class SourceMap:
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Position | None:
        """Where ``path``'s key (``key=True``) or value is; else its nearest known ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        current = path
        while True:
            if current in self.values:
                return self.values[current]
            if not current:
                return None
            current = current[:-1]

    def locate_in_string(self, path: Path, column: int | None) -> Position | None:
        """Where character ``column`` (1-based) of the string at ``path`` is, when it can be
        known (a one-line scalar); else the string's own position."""
        pos = self.locate(path)
        if pos is None or column is None or path not in self.values or not pos.single_line \
                or pos.style in ("|", ">"):
            return pos
        quote = 1 if pos.style in ("'", '"') else 0
        return Position(pos.line, pos.column + quote + column - 1, pos.style)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars: dates stay strings, only true/false are booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))

_SCALAR_TAGS = {"tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}


class _TooLarge(Exception):
    pass


class _Builder:
    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.smap = SourceMap()
        self.issues: list[Issue] = []
        self.count = 0
        self.active: set[int] = set()

    def issue(self, code: str, message: str, path: Path, node: yaml.Node) -> None:
        mark = node.start_mark
        self.issues.append(Issue(code, message, format_path(path), mark.line + 1, mark.column + 1))

    def build(self, node: yaml.Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        start, end = node.start_mark, node.end_mark
        style = getattr(node, "style", None)
        self.smap.values[path] = Position(start.line + 1, start.column + 1, style, start.line == end.line)
        if depth > MAX_NESTING:
            self.issue("invalid_workflow", f"nested deeper than {MAX_NESTING} levels", path, node)
            return None
        if id(node) in self.active:
            self.issue("invalid_workflow", "a recursive YAML alias", path, node)
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != "tag:yaml.org,2002:seq":
                    self.issue("invalid_workflow", f"unsupported YAML tag {node.tag}", path, node)
                return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            if node.tag != "tag:yaml.org,2002:map":
                self.issue("invalid_workflow", f"unsupported YAML tag {node.tag}", path, node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.issue("invalid_workflow", "YAML merge keys (<<) are not supported", path, key_node)
                    continue
                key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str):
                    self.issue("invalid_workflow", "mapping keys must be strings", path, key_node)
                    continue
                if key in out:
                    self.issue("duplicate_key", f"key {key!r} appears twice", (*path, key), key_node)
                    continue
                self.smap.keys[(*path, key)] = Position(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self.build(value_node, (*path, key), depth + 1)
            return out
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.issue("invalid_workflow", f"unsupported YAML tag {node.tag}", path, node)
            return None
        try:
            value = self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            self.issue("invalid_yaml", str(exc).splitlines()[0], path, node)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.issue("invalid_workflow", "numbers must be finite", path, node)
            return None
        return value


def load_text(text: str) -> tuple[Any, SourceMap | None, list[Issue]]:
    """Parse YAML (JSON is YAML) into JSON values, a source map and any problems found."""
    if len(text) > MAX_SOURCE_CHARS:
        return None, None, [Issue("invalid_workflow", f"definition longer than {MAX_SOURCE_CHARS} characters")]
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses non-printable characters at once
        return None, None, [Issue("invalid_yaml", str(exc).splitlines()[0] if str(exc) else "invalid YAML")]
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
            line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
            return None, None, [Issue("invalid_yaml", message, "", line, column)]
        except yaml.YAMLError as exc:
            return None, None, [Issue("invalid_yaml", str(exc).splitlines()[0] if str(exc) else "invalid YAML")]
        except RecursionError:
            return None, None, [Issue("invalid_yaml", "YAML nested too deeply")]
        if root is None:
            return None, None, [Issue("invalid_workflow", "the definition is empty", "", 1, 1)]
        builder = _Builder(loader)
        try:
            data = builder.build(root, ())
        except _TooLarge:
            return None, None, [Issue("invalid_workflow", f"definition expands to more than {MAX_NODES} values "
                                      "(YAML aliases?)")]
        return data, builder.smap, builder.issues
    finally:
        loader.dispose()


def iter_json(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every ``(path, value)`` in a JSON value, depth first (strings, numbers, containers)."""
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        yield where, item
        if isinstance(item, dict):
            stack.extend(((*where, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(item))))

"""Signature -> JSON Schema for a tool's entry function.

Runs inside the sandboxed child (``child.py`` in "inspect" mode), never in the server:
describing a function means importing the user's module. Stdlib-only at import time,
as it may run under a tool's virtualenv interpreter: pydantic is used when that
interpreter has it (richest schemas: models, constraints, formats), else a stdlib
mapping covers the basic types (int, float, str, bool, list, dict, Literal, Optional,
Enum, dataclasses, datetime...).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import inspect
import pathlib
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

_EMPTY = inspect.Parameter.empty


@dataclasses.dataclass
class Param:
    name: str
    annotation: Any  # _EMPTY when not annotated
    default: Any  # _EMPTY when required
    description: str | None


def describe(fn: Callable[..., Any], *, use_pydantic: bool = True) -> dict[str, Any]:
    """``{"input_schema", "output_schema", "description", "is_async"}`` for ``fn``."""
    summary, param_docs = parse_docstring(inspect.getdoc(fn))
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable forward refs: use the raw annotations
        hints = {}
    params: list[Param] = []
    extra_allowed = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            continue  # inputs are passed by name
        if p.kind is p.VAR_KEYWORD:
            extra_allowed = True
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise TypeError(f"parameter {p.name!r} is positional-only; tool inputs are passed by name")
        ann = hints.get(p.name, p.annotation)
        params.append(Param(p.name, ann, p.default, param_docs.get(p.name)))
    ret = hints.get("return", sig.return_annotation)

    schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    if use_pydantic and _has_pydantic():
        try:
            schema = _pydantic_inputs(params)
            output_schema = _pydantic_output(ret)
        except Exception:  # noqa: BLE001 - a type pydantic cannot handle: stdlib mapping below
            schema = None
    if schema is None:
        schema = stdlib_inputs(params)
        output_schema = None if ret in (_EMPTY, None) else _StdlibMapper().root(ret)
    schema["additionalProperties"] = extra_allowed
    return {
        "input_schema": schema,
        "output_schema": output_schema,
        "description": summary,
        "is_async": inspect.iscoroutinefunction(fn),
    }


def _has_pydantic() -> bool:
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- pydantic


def _pydantic_inputs(params: list[Param]) -> dict[str, Any]:
    import warnings

    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for i, p in enumerate(params):
        ann = Any if p.annotation is _EMPTY else p.annotation
        default = ... if p.default is _EMPTY else p.default
        # Internal field names with the real name as alias: any parameter name works,
        # even ones that clash with BaseModel attributes ("json", "model_config", ...).
        fields[f"p{i}"] = (ann, Field(default, alias=p.name, description=p.description))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. non-JSON-able defaults are simply left out
        model = create_model("Inputs", __config__=ConfigDict(arbitrary_types_allowed=False), **fields)
        schema = model.model_json_schema(by_alias=True)
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)  # pydantic's "Max Items" titles add nothing to the name
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    return schema


def _pydantic_output(ret: Any) -> dict[str, Any] | None:
    if ret in (_EMPTY, None, type(None)):
        return None
    from pydantic import TypeAdapter

    return TypeAdapter(ret).json_schema()


# --------------------------------------------------------------------------- stdlib


def stdlib_inputs(params: list[Param]) -> dict[str, Any]:
    mapper = _StdlibMapper()
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        prop = dict(mapper.schema(p.annotation))
        if p.description:
            prop["description"] = p.description
        if p.default is _EMPTY:
            required.append(p.name)
        elif _json_default(p.default) is not _NO_DEFAULT:
            prop["default"] = _json_default(p.default)
        properties[p.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if mapper.defs:
        schema["$defs"] = mapper.defs
    return schema


_NO_DEFAULT = object()


def _json_default(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _json_default(value.value)
    if isinstance(value, (list, tuple)):
        items = [_json_default(v) for v in value]
        return _NO_DEFAULT if any(v is _NO_DEFAULT for v in items) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        out = {k: _json_default(v) for k, v in value.items()}
        return _NO_DEFAULT if any(v is _NO_DEFAULT for v in out.values()) else out
    return _NO_DEFAULT


class _StdlibMapper:
    """Python annotations -> JSON Schema without pydantic; named types go to ``defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def root(self, ann: Any) -> dict[str, Any]:
        schema = dict(self.schema(ann))
        if self.defs:
            schema["$defs"] = self.defs
        return schema

    def schema(self, ann: Any) -> dict[str, Any]:
        if ann is _EMPTY or ann is Any or ann is object:
            return {}
        if ann is None or ann is type(None):
            return {"type": "null"}
        simple = _SIMPLE.get(ann)
        if simple is not None:
            return dict(simple)
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        if origin is typing.Annotated:
            return self.schema(args[0])
        if origin is typing.Literal:
            values = [v.value if isinstance(v, enum.Enum) else v for v in args]
            return _enum_schema(values)
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.schema(a) for a in args]}
        if origin in (list, set, frozenset) or _is_abc(
            origin, "Sequence", "MutableSequence", "Set", "Iterable"
        ):
            schema: dict[str, Any] = {"type": "array"}
            if args:
                schema["items"] = self.schema(args[0])
            if origin in (set, frozenset):
                schema["uniqueItems"] = True
            return schema
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0])}
            items = [self.schema(a) for a in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
        if origin is dict or _is_abc(origin, "Mapping", "MutableMapping"):
            schema = {"type": "object"}
            if len(args) == 2:
                schema["additionalProperties"] = self.schema(args[1])
            return schema
        if isinstance(ann, type):
            if issubclass(ann, enum.Enum):
                return self._named(
                    ann, lambda: {**_enum_schema([m.value for m in ann]), "title": ann.__name__}
                )
            if dataclasses.is_dataclass(ann):
                return self._named(ann, lambda: self._object(ann, _dataclass_fields(ann)))
            if typing.is_typeddict(ann):
                return self._named(ann, lambda: self._object(ann, _typeddict_fields(ann)))
        return {}  # unknown type: accept any JSON value

    def _named(self, cls: type, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.defs:
            self.defs[name] = {}  # placeholder first: recursive types refer to themselves
            self.defs[name] = build()
        return {"$ref": f"#/$defs/{name}"}

    def _object(self, cls: type, fields: list[tuple[str, Any, bool, Any]]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, ann, is_required, default in fields:
            prop = dict(self.schema(ann))
            if is_required:
                required.append(name)
            elif _json_default(default) is not _NO_DEFAULT:
                prop["default"] = _json_default(default)
            properties[name] = prop
        return {"type": "object", "title": cls.__name__, "properties": properties, "required": required}


_SIMPLE: dict[Any, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bytes: {"type": "string", "format": "binary"},
    list: {"type": "array"},
    tuple: {"type": "array"},
    set: {"type": "array", "uniqueItems": True},
    dict: {"type": "object"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    dt.timedelta: {"type": "number"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    pathlib.Path: {"type": "string", "format": "path"},
    decimal.Decimal: {"anyOf": [{"type": "number"}, {"type": "string"}]},
}


def _is_abc(origin: Any, *names: str) -> bool:
    import collections.abc as abc

    return any(origin is getattr(abc, n) for n in names)


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": list(values)}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _dataclass_fields(cls: type) -> list[tuple[str, Any, bool, Any]]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001
        hints = {}
    out = []
    for f in dataclasses.fields(cls):
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else _NO_DEFAULT
        out.append((f.name, hints.get(f.name, f.type), not has_default, default))
    return out


def _typeddict_fields(cls: type) -> list[tuple[str, Any, bool, Any]]:
    hints = typing.get_type_hints(cls)
    required = getattr(cls, "__required_keys__", set(hints))
    return [(name, ann, name in required, _NO_DEFAULT) for name, ann in hints.items()]


# --------------------------------------------------------------------------- docstrings

_GOOGLE_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$"
)
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?::\s*(.*))?$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*?\s)?\*{0,2}(\w+)\s*:\s*(.*)$")
_SECTION_WORDS = (
    "Args", "Arguments", "Parameters", "Params", "Returns", "Return", "Yields", "Raises", "Examples",
    "Example", "Notes", "Note", "See Also", "Attributes", "Keyword Args", "Keyword Arguments",
    "Other Parameters", "References", "Warnings", "Warning",
)  # fmt: skip


def parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """(summary, {parameter: description}) from a Google, NumPy or reST docstring."""
    if not doc:
        return None, {}
    lines = doc.expandtabs().splitlines()
    return _summary(lines), {**_numpy_params(lines), **_google_params(lines), **_rest_params(lines)}


def _is_header(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    if line.rstrip(":") in _SECTION_WORDS and (line.endswith(":") or _is_underline(lines, i + 1)):
        return True
    return line.startswith(":") or _is_underline(lines, i + 1)


def _is_underline(lines: list[str], i: int) -> bool:
    return i < len(lines) and len(lines[i].strip()) >= 3 and set(lines[i].strip()) <= {"-", "="}


def _summary(lines: list[str]) -> str | None:
    para: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            if para:
                break
            continue
        if _is_header(lines, i):
            break
        para.append(line.strip())
    return " ".join(para) or None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _collect(entries: dict[str, list[str]], name: str | None, text: str) -> None:
    if name is not None and text:
        entries.setdefault(name, []).append(text)


def _google_params(lines: list[str]) -> dict[str, str]:
    entries: dict[str, list[str]] = {}
    i = 0
    while i < len(lines):
        if not _GOOGLE_HEADER.match(lines[i].strip()):
            i += 1
            continue
        header_indent = _indent(lines[i])
        item_indent: int | None = None
        current: str | None = None
        i += 1
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= header_indent:
                break  # dedent: the section is over
            if not line.strip():
                i += 1
                continue
            if item_indent is None:
                item_indent = _indent(line)
            match = _GOOGLE_ITEM.match(line.strip())
            if _indent(line) == item_indent and match:
                current = match.group(1)
                entries[current] = []
                _collect(entries, current, match.group(3).strip())
            else:
                _collect(entries, current, line.strip())
            i += 1
    return {k: " ".join(v) for k, v in entries.items() if v}


def _numpy_params(lines: list[str]) -> dict[str, str]:
    entries: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        if line.strip() not in ("Parameters", "Other Parameters") or not _is_underline(lines, i + 1):
            continue
        base = _indent(line)
        current: str | None = None
        j = i + 2
        while j < len(lines):
            text = lines[j]
            if text.strip() and _is_underline(lines, j + 1):
                break  # the next section's header
            if not text.strip():
                j += 1
                continue
            if _indent(text) <= base:
                match = _NUMPY_ITEM.match(text.strip())
                if not match:
                    break
                current = match.group(1)
                entries[current] = []
            else:
                _collect(entries, current, text.strip())
            j += 1
    return {k: " ".join(v) for k, v in entries.items() if v}


def _rest_params(lines: list[str]) -> dict[str, str]:
    entries: dict[str, list[str]] = {}
    current: str | None = None
    current_indent = 0
    for line in lines:
        match = _REST_PARAM.match(line.strip())
        if match:
            current = match.group(1)
            current_indent = _indent(line)
            entries[current] = []
            _collect(entries, current, match.group(2).strip())
        elif (
            current is not None
            and line.strip()
            and _indent(line) > current_indent
            and not line.strip().startswith(":")
        ):
            _collect(entries, current, line.strip())
        else:
            current = None
    return {k: " ".join(v) for k, v in entries.items() if v}

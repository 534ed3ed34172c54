"""A run form generated from a tool's input JSON Schema, and the inputs a submitted form means.

``fields_of(schema)`` describes one form field per input: strings, numbers, integers and
booleans as inputs, enums as selects, arrays of scalars as one item per line, other arrays and
free-form objects as JSON, objects with properties as nested fieldsets, binary/path strings as
file inputs; defaults fill them, descriptions become help text, bounds become HTML attributes
(the browser's own check). ``inputs_of(fields, form)`` reads a submission back: values that are
not what their field needs get a message at that field; the schema itself is then judged by the
runs service (``RunService.create``) exactly as for the API, and its messages are put at their
fields too (``place_errors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 6  # nested objects drawn as fieldsets; deeper ones are edited as JSON
FILE_FORMATS = ("binary", "path")
LINE_ITEM_TYPES = ("string", "integer", "number")


@dataclass
class Field:
    name: str  # the form field's name: the input's path, dotted ("options.depth")
    label: str
    kind: str  # text | textarea | number | integer | checkbox | select | lines | json | file | object
    required: bool = False
    help: str = ""
    default: Any = None
    options: list[tuple[str, str]] = field(default_factory=list)  # (submitted value, shown label)
    attrs: dict[str, str] = field(default_factory=dict)  # HTML validation attributes
    item_type: str = "string"  # the items' type of a "lines" field
    children: list[Field] = field(default_factory=list)
    value: str = ""  # what the field shows: the default, or what was submitted
    checked: bool = False
    error: str | None = None

    @property
    def html_id(self) -> str:
        return "in-" + self.name.replace(".", "-")


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a local ``$ref`` followed and an ``Optional`` (anyOf with null) unwrapped."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 10:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    if not isinstance(schema, dict):
        return {}
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            if len(real) == 1:
                merged = {**_resolve(real[0], root), **{k: v for k, v in schema.items() if k != key}}
                return merged
    if isinstance(schema.get("type"), list):
        types = [t for t in schema["type"] if t != "null"]
        if len(types) == 1:
            return {**schema, "type": types[0]}
    return schema


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def fields_of(schema: dict[str, Any] | None, defaults: dict[str, Any] | None = None) -> list[Field]:
    """The form fields of a tool's input schema (``defaults``: the tool's default inputs)."""
    schema = schema or {}
    return _object_fields(_resolve(schema, schema), schema, prefix="", defaults=defaults or {}, depth=0)


def _object_fields(schema: dict[str, Any], root: dict[str, Any], *, prefix: str, defaults: dict[str, Any],
                   depth: int) -> list[Field]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = set(schema.get("required") or [])
    out = []
    for name, raw in properties.items():
        if not isinstance(name, str):
            continue
        prop = _resolve(raw, root)
        default = defaults.get(name, prop.get("default"))
        out.append(_field(f"{prefix}{name}", name, prop, root, required=name in required, default=default,
                          depth=depth))
    return out


def _field(path: str, name: str, prop: dict[str, Any], root: dict[str, Any], *, required: bool, default: Any,
           depth: int) -> Field:
    label = str(prop.get("title") or name)
    help_text = str(prop.get("description") or "")
    kind_of = prop.get("type")
    f = Field(name=path, label=label, kind="json", required=required, help=help_text, default=default)
    if "enum" in prop and isinstance(prop["enum"], list):
        f.kind = "select"
        f.options = [(json.dumps(v), _shown(v)) for v in prop["enum"]]
        f.value = json.dumps(default) if default is not None else ""
    elif kind_of == "boolean":
        f.kind, f.checked = "checkbox", bool(default)
    elif kind_of in ("integer", "number"):
        f.kind = kind_of
        f.attrs["step"] = "1" if kind_of == "integer" else "any"
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            if isinstance(prop.get(key), int | float):
                f.attrs[attr] = str(prop[key])
        f.value = _shown(default)
    elif kind_of == "string":
        if prop.get("format") in FILE_FORMATS and "." not in path:
            f.kind = "file"
        else:
            f.kind = "textarea" if isinstance(prop.get("maxLength"), int) and prop["maxLength"] > 200 else "text"
            for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
                if isinstance(prop.get(key), int):
                    f.attrs[attr] = str(prop[key])
            f.value = _shown(default)
    elif kind_of == "array" and _resolve(prop.get("items", {}), root).get("type") in LINE_ITEM_TYPES \
            and "enum" not in _resolve(prop.get("items", {}), root):
        f.kind, f.item_type = "lines", _resolve(prop["items"], root)["type"]
        f.help = (help_text + " " if help_text else "") + "One item per line."
        f.value = "\n".join(_shown(v) for v in default) if isinstance(default, list) else ""
    elif kind_of == "object" and isinstance(prop.get("properties"), dict) and depth < MAX_DEPTH:
        f.kind = "object"
        f.children = _object_fields(prop, root, prefix=f"{path}.", defaults=default if isinstance(default, dict)
                                    else {}, depth=depth + 1)
    else:
        f.help = (help_text + " " if help_text else "") + "JSON."
        f.value = json.dumps(default, indent=2) if default is not None else ""
    return f


def inputs_of(fields: list[Field], form: Any) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(inputs, files, valid): the submitted ``form`` read per field; a value its field cannot
    take sets that field's ``error``. ``files``: upload name → (filename, stream)."""
    files: dict[str, Any] = {}
    inputs, valid = _read(fields, form, files)
    return inputs, files, valid


def _read(fields: list[Field], form: Any, files: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    out: dict[str, Any] = {}
    valid = True
    for f in fields:
        key = f.name.rsplit(".", 1)[-1]
        if f.kind == "object":
            child, ok = _read(f.children, form, files)
            valid = valid and ok
            if child or f.required:
                out[key] = child
            continue
        if f.kind == "file":
            upload = form.get(f.name)
            if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", ""):
                files[f.name] = (upload.filename, upload.file)
            elif f.required:
                f.error, valid = "choose a file", False
            continue
        if f.kind == "checkbox":
            f.checked = form.get(f.name) is not None
            out[key] = f.checked
            continue
        raw = form.get(f.name)
        text = raw if isinstance(raw, str) else ""
        f.value = text
        if text.strip() == "":
            if f.required and f.default is None:
                f.error, valid = "this field is required", False
            continue  # left out: the tool's default applies
        try:
            out[key] = _convert(f, text)
        except ValueError as exc:
            f.error, valid = str(exc), False
    return out, valid


def _convert(f: Field, text: str) -> Any:
    if f.kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
    if f.kind == "number":
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError("must be a number") from None
        return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    if f.kind == "select":
        if text not in {value for value, _ in f.options}:
            raise ValueError("choose one of the options")
        return json.loads(text)
    if f.kind == "lines":
        items = [line.strip() for line in text.splitlines() if line.strip()]
        if f.item_type == "string":
            return items
        try:
            return [int(i) if f.item_type == "integer" else float(i) for i in items]
        except ValueError:
            raise ValueError(f"each line must be {'a whole number' if f.item_type == 'integer' else 'a number'}") \
                from None
    if f.kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be valid JSON ({exc.msg} at line {exc.lineno})") from None
    return text


def place_errors(fields: list[Field], errors: list[dict[str, Any]]) -> list[str]:
    """Put the runs service's per-input messages at their fields (an error at ``tags.2`` goes
    to field ``tags``); the messages no field owns are returned for the top of the form."""
    by_name = {f.name: f for f in walk(fields)}
    left = []
    for err in errors:
        path = str(err.get("field") or "")
        message = str(err.get("message") or "invalid")
        target = None
        parts = path.split(".")
        while parts and target is None:
            target = by_name.get(".".join(parts))
            parts.pop()
        if target is None:
            left.append(f"{path}: {message}" if path else message)
        elif target.error is None:
            target.error = message
    return left


def walk(fields: list[Field]) -> list[Field]:
    out = []
    for f in fields:
        out.append(f)
        out.extend(walk(f.children))
    return out

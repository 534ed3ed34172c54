"""DataMaker's params and ``wait`` flag as runyard reads them: shared by the client
(:mod:`runyard.compat.datamaker.scenarios`) and the server's REST paths
(``api/compat/datamaker.py``), so both read a string param the same way. Pure: imports
nothing of runyard."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["coerce_params", "wait_flag"]

_INTEGER = re.compile(r"[+-]?\d+")


def wait_flag(wait: bool | str) -> bool:
    """The reference sends ``"wait": "true"`` / ``"false"`` (strings); booleans do too."""
    if isinstance(wait, bool):
        return wait
    if isinstance(wait, str) and wait.strip().lower() in ("true", "false"):
        return wait.strip().lower() == "true"
    raise ValueError(f"wait must be true or false (a bool or the strings 'true'/'false'), got {wait!r}")


def _types(prop: Mapping[str, Any]) -> set[str]:
    """The JSON types an input schema property admits (``type`` or its ``anyOf`` branches)."""
    found: set[str] = set()
    kind = prop.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(k for k in kind if isinstance(k, str))
    for branch in (*prop.get("anyOf", ()), *prop.get("oneOf", ())):
        if isinstance(branch, Mapping):
            found |= _types(branch)
    return found


def _coerce(value: str, types: set[str]) -> Any:
    """``value`` as the first of ``types`` it reads as exactly; else the string itself."""
    text = value.strip()
    if "integer" in types and _INTEGER.fullmatch(text):
        return int(text)
    if "number" in types:
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number == number and number not in (float("inf"), float("-inf")):
                return int(number) if _INTEGER.fullmatch(text) else number
    if "boolean" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if types & {"object", "array"} and text[:1] in "{[":
        try:
            parsed = json.loads(text)
        except ValueError:
            return value
        if ("object" in types and isinstance(parsed, dict)) or ("array" in types and isinstance(parsed, list)):
            return parsed
    if "null" in types and text.lower() == "null":
        return None
    return value


def coerce_params(params: Mapping[str, Any], input_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """DataMaker params are strings. Each string param whose input (in the scenario's input
    schema) does not accept a string is read as the type it does accept — integer, number,
    boolean, JSON object/array, null — when it reads as exactly that; every other value
    goes as given (and runyard's validation refuses what still does not fit)."""
    props = (input_schema or {}).get("properties") or {}
    out: dict[str, Any] = {}
    for key, value in params.items():
        prop = props.get(key)
        if isinstance(value, str) and isinstance(prop, Mapping):
            types = _types(prop)
            if types and "string" not in types:
                value = _coerce(value, types)
        out[key] = value
    return out

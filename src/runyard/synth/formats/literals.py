"""Column-wise rendering of values as JSON or SQL literals (vectorised with Arrow compute)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CONTROL = r"[\x00-\x1f]"
# Anything that needs escaping in a JSON string; generated text rarely has any.
_JSON_SPECIAL = r'[\x00-\x1f"\\]'


def _finite(values: pa.Array) -> pa.Array:
    """Floats with NaN/inf turned into nulls: neither JSON nor SQL has a literal for them."""
    return pc.if_else(pc.is_finite(values), values, pa.scalar(None, values.type))


def text_of(values: pa.Array) -> pa.Array:
    """The canonical text of each value (ISO dates and times, shortest float repr)."""
    t = values.type
    if pa.types.is_floating(t):
        return pc.cast(_finite(values), pa.string())
    if pa.types.is_timestamp(t):
        return pc.strftime(values, "%Y-%m-%dT%H:%M:%S")
    if pa.types.is_string(t):
        return values
    if pa.types.is_date(t) or pa.types.is_time(t):
        # Few distinct days/times per block: format each distinct value once.
        encoded = pc.dictionary_encode(values)
        return pc.cast(encoded.dictionary, pa.string()).take(encoded.indices)
    return pc.cast(values, pa.string())


def json_string(values: pa.Array) -> pa.Array:
    """JSON string literals, quotes included."""
    if not pc.any(pc.match_substring_regex(values, _JSON_SPECIAL)).as_py():
        return pc.binary_join_element_wise('"', values, '"', "")
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    control = pc.match_substring_regex(values, _CONTROL)
    if pc.any(control).as_py():
        # Rare: control characters need \uXXXX escapes; do just those rows in Python.
        rows = np.nonzero(control.fill_null(False).to_numpy(zero_copy_only=False))[0]
        fixed = quoted.to_pylist()
        for i in rows:
            fixed[i] = json.dumps(values[int(i)].as_py(), ensure_ascii=False)
        quoted = pa.array(fixed, pa.string())
    return quoted


def json_literals(values: pa.Array) -> pa.Array:
    t = values.type
    if pa.types.is_null(t):
        return pa.repeat(pa.scalar("null"), len(values))
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return text_of(values).fill_null("null")
    return json_string(text_of(values)).fill_null("null")


def sql_literals(values: pa.Array, *, backslash_escapes: bool) -> pa.Array:
    t = values.type
    if pa.types.is_null(t):
        return pa.repeat(pa.scalar("NULL"), len(values))
    if pa.types.is_boolean(t):
        return pc.if_else(values, pa.scalar("TRUE"), pa.scalar("FALSE")).fill_null("NULL")
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return text_of(values).fill_null("NULL")
    text = text_of(values)
    if pa.types.is_timestamp(t):
        text = pc.replace_substring(text, "T", " ")
    if backslash_escapes:
        text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, "'", "''")
    return pc.binary_join_element_wise("'", text, "'", "").fill_null("NULL")

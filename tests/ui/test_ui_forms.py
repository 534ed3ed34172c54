"""ui/forms.py: the run form generated from an input JSON Schema, read back from a submission."""

from __future__ import annotations

import io
from typing import Any

from runyard.ui.forms import fields_of, inputs_of, place_errors, walk

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"Options": {"type": "object", "properties": {
        "depth": {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
        "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}}, "required": ["depth"]}},
    "properties": {
        "name": {"type": "string", "description": "Who to greet", "maxLength": 40},
        "count": {"type": "integer", "minimum": 0},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean", "default": True},
        "mode": {"enum": ["fast", "slow", 3]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "sizes": {"type": "array", "items": {"type": "integer"}},
        "pairs": {"type": "array", "items": {"type": "object"}},
        "options": {"$ref": "#/$defs/Options"},
        "upload": {"type": "string", "format": "binary"},
    },
    "required": ["name", "count"],
}


class Form(dict):
    """What Starlette's form gives: ``get`` by name, files as objects with a filename."""


class Upload:
    def __init__(self, filename: str, data: bytes) -> None:
        self.filename, self.file = filename, io.BytesIO(data)


def test_each_schema_shape_becomes_its_own_control() -> None:
    fields = {f.name: f for f in walk(fields_of(SCHEMA, {"count": 2}))}
    assert fields["name"].kind == "text" and fields["name"].required and fields["name"].help == "Who to greet"
    assert fields["name"].attrs == {"maxlength": "40"}
    assert fields["count"].kind == "integer" and fields["count"].value == "2" and fields["count"].attrs["min"] == "0"
    assert fields["ratio"].attrs["step"] == "any" and fields["loud"].kind == "checkbox" and fields["loud"].checked
    assert fields["mode"].kind == "select" and fields["mode"].options == [('"fast"', "fast"), ('"slow"', "slow"),
                                                                         ("3", "3")]
    assert fields["tags"].kind == "lines" and fields["sizes"].item_type == "integer"
    assert fields["pairs"].kind == "json"
    assert fields["options"].kind == "object" and fields["options.depth"].value == "3"
    assert fields["options.label"].kind == "text" and not fields["options.label"].required
    assert fields["upload"].kind == "file"


def test_a_submission_is_read_back_as_typed_inputs() -> None:
    fields = fields_of(SCHEMA)
    upload = Upload("data.csv", b"a,b\n")
    inputs, files, valid = inputs_of(fields, Form({
        "name": "Ada", "count": "4", "ratio": "0.5", "mode": "3", "tags": "x\n\n y \n", "sizes": "1\n2",
        "pairs": '[{"a": 1}]', "options.depth": "5", "options.label": "", "upload": upload}))
    assert valid
    assert inputs == {"name": "Ada", "count": 4, "ratio": 0.5, "loud": False, "mode": 3, "tags": ["x", "y"],
                      "sizes": [1, 2], "pairs": [{"a": 1}], "options": {"depth": 5}}
    assert files == {"upload": ("data.csv", upload.file)}


def test_values_a_field_cannot_take_get_messages_there() -> None:
    fields = fields_of(SCHEMA)
    _, _, valid = inputs_of(fields, Form({"name": "", "count": "1.5", "ratio": "x", "mode": '"warp"',
                                          "sizes": "1\ntwo", "pairs": "[oops", "options.depth": "deep"}))
    errors = {f.name: f.error for f in walk(fields) if f.error}
    assert not valid
    assert errors == {"name": "this field is required", "count": "must be a whole number",
                      "ratio": "must be a number", "mode": "choose one of the options",
                      "sizes": "each line must be a whole number",
                      "pairs": "must be valid JSON (Expecting value at line 1)",
                      "options.depth": "must be a whole number"}
    assert {f.name: f.value for f in walk(fields)}["count"] == "1.5"  # the form shows what was typed


def test_the_services_messages_go_to_their_fields() -> None:
    fields = fields_of(SCHEMA)
    left = place_errors(fields, [{"field": "options.depth", "message": "10 is greater than the maximum of 9"},
                                 {"field": "sizes.1", "message": "'x' is not of type 'integer'"},
                                 {"field": "unknown", "message": "unexpected input 'unknown'"},
                                 {"field": "", "message": "inputs must be an object"}])
    errors = {f.name: f.error for f in walk(fields) if f.error}
    assert errors == {"options.depth": "10 is greater than the maximum of 9", "sizes": "'x' is not of type 'integer'"}
    assert left == ["unknown: unexpected input 'unknown'", "inputs must be an object"]


def test_no_schema_no_fields() -> None:
    assert fields_of(None) == [] and fields_of({"type": "object", "additionalProperties": True}) == []

from __future__ import annotations

import json

import pytest
import yaml

from runyard import synth
from runyard.synth import TemplateError


def test_customers_template_accepted_as_written(customers_doc):
    template = synth.parse_template(customers_doc)
    assert template.field_names == ["id", "name", "email", "city", "born", "amount", "tier", "total"]
    assert template.locale == "en_US"
    # Round trip: the stored form parses to the same fields.
    again = synth.parse_template(template.to_dict())
    assert again.to_dict() == template.to_dict()


def test_json_and_yaml_text_parse_the_same(customers_doc):
    from_json = synth.parse_template(json.dumps(customers_doc))
    from_yaml = synth.parse_template(yaml.safe_dump(customers_doc))
    assert from_json.to_dict() == from_yaml.to_dict()


def _bad(doc_fields, **top):
    return {"name": "t", "fields": doc_fields, **top}


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ([{"name": "a", "generator": "nope"}], "a", "unknown generator 'nope'"),
        ([{"name": "a", "generator": "integer", "min": "x"}], "a", "option 'min'"),
        ([{"name": "a", "generator": "integer", "min": 10, "max": 1}], "a", "option 'min'"),
        ([{"name": "a", "generator": "float", "distribution": "cauchy"}], "a", "option 'distribution'"),
        ([{"name": "a", "generator": "integer", "colour": 3}], "a", "option 'colour' is not a known option"),
        ([{"name": "a", "generator": "choice", "values": [1, 2], "weights": [1]}], "a", "option 'weights'"),
        ([{"name": "a", "generator": "regex", "pattern": "[A-Z"}], "a", "malformed regex"),
        ([{"name": "a", "generator": "regex", "pattern": r"(a)\1"}], "a", "unsupported"),
        ([{"name": "a", "generator": "formula", "expression": "b + 1"}, {"name": "b", "generator": "integer"}],
         "a", "field 'b', which is defined after it"),
        ([{"name": "a", "generator": "integer"}, {"name": "b", "generator": "formula", "expression": "zz * 2"}],
         "b", "unknown field 'zz'"),
        ([{"name": "a", "generator": "formula", "expression": "random()"}], "a", "non-reproducible"),
        ([{"name": "a", "generator": "formula", "expression": "1); DROP TABLE x; SELECT (1"}], "a", "single"),
        ([{"name": "a", "generator": "date", "min": "2020-13-01"}], "a", "option 'min'"),
        ([{"name": "a", "generator": "text.sentence", "unique": True}], "a", "unique is not supported"),
        ([{"name": "a", "generator": "integer", "null_rate": 2}], "a", "null_rate"),
        ([{"name": "a", "generator": "integer"}, {"name": "a", "generator": "integer"}], "a", "duplicate"),
        ([{"name": "a", "generator": "person.full_name", "locale": "xx_XX"}], "a", "unknown locale"),
        ([{"name": "1a", "generator": "integer"}], "1a", "identifier"),
    ],
)
def test_bad_templates_name_the_field(fields, field, fragment):
    with pytest.raises(TemplateError) as info:
        synth.parse_template(_bad(fields))
    assert info.value.field == field
    assert fragment in info.value.message
    assert info.value.message.startswith(f"field '{field}'")


def test_template_level_errors():
    with pytest.raises(TemplateError, match="non-empty list"):
        synth.parse_template({"name": "t", "fields": []})
    with pytest.raises(TemplateError, match="unknown template key"):
        synth.parse_template({"name": "t", "fields": [{"name": "a", "generator": "uuid"}], "colour": 1})
    with pytest.raises(TemplateError, match="unknown locale"):
        synth.parse_template({"name": "t", "locale": "tlh", "fields": [{"name": "a", "generator": "uuid"}]})


def test_aliases_resolve_to_canonical_generators():
    template = synth.parse_template({"name": "t", "fields": [{"name": "e", "generator": "email"}]})
    assert template.fields[0].generator.name == "person.email"


def test_overrides_constant_and_generator(customers):
    plan = synth.plan_generation(customers, count=50, seed=1,
                                 overrides={"city": "Berlin", "tier": {"generator": "choice", "values": ["x"]}})
    table = synth.generate_table(plan.template, 50, seed=1)
    assert set(table.column("city").to_pylist()) == {"Berlin"}
    assert set(table.column("tier").to_pylist()) == {"x"}
    base = synth.generate_table(customers, 50, seed=1)
    # Other fields keep their values: streams are keyed by field name.
    assert table.column("name").to_pylist() == base.column("name").to_pylist()
    with pytest.raises(TemplateError) as info:
        synth.plan_generation(customers, count=5, overrides={"nope": 1})
    assert info.value.field == "nope"
    with pytest.raises(TemplateError) as info:
        synth.plan_generation(customers, count=5, overrides={"amount": "a lot"})
    assert info.value.field == "total"  # the formula over amount no longer binds

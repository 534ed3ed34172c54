from __future__ import annotations

import pyarrow as pa
import pytest

from runyard import synth
from runyard.synth import GenerationError


def test_formulas_compute_per_row():
    template = synth.parse_template({"name": "orders", "fields": [
        {"name": "price", "generator": "float", "min": 1, "max": 100, "decimals": 2},
        {"name": "quantity", "generator": "integer", "min": 1, "max": 9},
        {"name": "age", "generator": "integer", "min": 1, "max": 90},
        {"name": "first", "generator": "person.first_name"},
        {"name": "total", "generator": "formula", "expression": "round(price * quantity, 2)"},
        {"name": "band", "generator": "formula", "expression": "CASE WHEN age < 18 THEN 'minor' ELSE 'adult' END"},
        {"name": "label", "generator": "formula", "expression": "upper(first) || '-' || quantity"},
        {"name": "double_total", "generator": "formula", "expression": "total * 2"},
    ]})
    rows = synth.generate_table(template, 70_000, seed=3, workers=2).to_pylist()
    for row in rows:
        assert row["total"] == round(row["price"] * row["quantity"], 2)
        assert row["band"] == ("minor" if row["age"] < 18 else "adult")
        assert row["label"] == f"{row['first'].upper()}-{row['quantity']}"
        assert row["double_total"] == row["total"] * 2


def test_formula_sees_nulls_of_earlier_fields_and_has_its_own():
    template = synth.parse_template({"name": "t", "fields": [
        {"name": "a", "generator": "integer", "null_rate": 0.5},
        {"name": "b", "generator": "formula", "expression": "coalesce(a, -1)", "null_rate": 0.1},
    ]})
    rows = synth.generate_table(template, 5000, seed=1).to_pylist()
    assert any(r["a"] is None and r["b"] == -1 for r in rows)
    assert 300 < sum(r["b"] is None for r in rows) < 700


def test_formula_cannot_touch_files():
    template = synth.parse_template({"name": "t", "fields": [
        {"name": "a", "generator": "integer"},
        {"name": "b", "generator": "formula", "expression": "a"}]})
    assert template is not None
    with pytest.raises(synth.TemplateError) as info:
        synth.parse_template({"name": "t", "fields": [
            {"name": "a", "generator": "formula", "expression": "(SELECT count(*) FROM read_csv('/etc/passwd'))"}]})
    assert info.value.field == "a"


CUSTOMERS = {"name": "customers", "fields": [
    {"name": "id", "generator": "sequence", "start": 100},
    {"name": "email", "generator": "person.email"},
    {"name": "tag", "generator": "formula", "expression": "'c' || id"},
]}


class Resolver:
    def __init__(self) -> None:
        self.templates = {"customers": synth.parse_template(CUSTOMERS)}
        self.sets = {"skus": pa.table({"sku": ["A-1", "B-2", "C-3"]})}

    def template(self, ref, version):
        return self.templates[ref], version or 1

    def set_column(self, name, column, version):
        return self.sets[name].column(column)


def test_reference_to_template_matches_its_generation():
    orders = synth.parse_template({"name": "orders", "fields": [
        {"name": "order_id", "generator": "sequence"},
        {"name": "customer_id", "generator": "reference", "template": "customers", "field": "id", "count": 500},
        {"name": "customer_tag", "generator": "reference", "template": "customers", "field": "tag", "count": 500},
        {"name": "sku", "generator": "reference", "set": "skus", "column": "sku"},
        {"name": "note", "generator": "formula", "expression": "sku || '/' || customer_id"},
    ]})
    resolver = Resolver()
    table = synth.generate_table(orders, 3000, seed=9, resolver=resolver)
    customers = synth.generate_table(resolver.templates["customers"], 500, seed=9)
    ids = set(customers.column("id").to_pylist())
    assert set(table.column("customer_id").to_pylist()) <= ids
    assert len(set(table.column("customer_id").to_pylist())) > 400
    assert set(table.column("customer_tag").to_pylist()) <= set(customers.column("tag").to_pylist())
    assert set(table.column("sku").to_pylist()) == {"A-1", "B-2", "C-3"}
    assert all(n == f"{s}/{c}" for n, s, c in zip(table.column("note").to_pylist(), table.column("sku").to_pylist(),
                                                  table.column("customer_id").to_pylist(), strict=True))
    # Same seed → same references.
    again = synth.generate_table(orders, 3000, seed=9, resolver=resolver)
    assert again.equals(table)


def test_reference_unique_and_errors():
    template = synth.parse_template({"name": "t", "fields": [
        {"name": "c", "generator": "reference", "template": "customers", "field": "id", "count": 50, "unique": True}]})
    values = synth.generate_table(template, 50, seed=1, resolver=Resolver()).column("c").to_pylist()
    assert sorted(values) == list(range(100, 150))
    with pytest.raises(GenerationError) as info:
        synth.plan_generation(template, count=51, seed=1, resolver=Resolver())
    assert info.value.code == "unique_space_too_small"
    missing = synth.parse_template({"name": "t", "fields": [
        {"name": "c", "generator": "reference", "set": "nope", "column": "x"}]})
    with pytest.raises(GenerationError) as info:
        synth.plan_generation(missing, count=1, seed=1, resolver=Resolver())
    assert info.value.code == "reference_not_found" and info.value.details["field"] == "c"
    with pytest.raises(synth.TemplateError) as terr:
        synth.parse_template({"name": "t", "fields": [{"name": "c", "generator": "reference", "template": "x"}]})
    assert terr.value.field == "c"

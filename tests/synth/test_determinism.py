from __future__ import annotations

import copy

import pytest

from runyard import synth
from runyard.synth import BLOCK_ROWS

from .conftest import CUSTOMERS, render

# Spans two blocks (the second one partial) so block seams are exercised.
ROWS = BLOCK_ROWS + 1234


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson", "sql", "parquet"])
def test_same_bytes_across_runs_chunk_sizes_and_workers(customers, fmt):
    reference = render(customers, fmt, ROWS, seed=99)
    assert render(customers, fmt, ROWS, seed=99) == reference
    assert render(customers, fmt, ROWS, seed=99, workers=2) == reference
    assert render(customers, fmt, ROWS, seed=99, chunk_rows=10_000, workers=2) == reference
    assert render(customers, fmt, ROWS, seed=99, chunk_rows=997) == reference
    assert render(customers, fmt, ROWS, seed=100) != reference


def test_xlsx_bytes_reproducible_across_chunking(customers):
    reference = render(customers, "xlsx", 300, seed=5)
    assert render(customers, "xlsx", 300, seed=5, chunk_rows=7, workers=2) == reference


def test_string_and_integer_seeds(customers):
    assert render(customers, "csv", 20, seed="42") == render(customers, "csv", 20, seed=42)
    assert render(customers, "csv", 20, seed="blue") == render(customers, "csv", 20, seed="blue")
    assert render(customers, "csv", 20, seed="blue") != render(customers, "csv", 20, seed="red")


def test_template_version_is_part_of_the_stream(customers):
    one = synth.plan_generation(customers, count=10, seed=1, version=1)
    two = synth.plan_generation(customers, count=10, seed=1, version=2)
    assert b"".join(synth.stream(one, "csv")) != b"".join(synth.stream(two, "csv"))


def test_preview_equals_first_rows_of_full_generation(customers):
    seed, rows = synth.preview_rows(customers, seed=11)
    assert seed == 11
    full = synth.generate_table(customers, 5000, seed=11)
    from runyard.synth.formats.jsonfmt import json_ready

    expected = [{k: json_ready(v) for k, v in row.items()} for row in full.slice(0, 3).to_pylist()]
    assert rows == expected


def test_every_generator_is_prefix_stable():
    """A short generation is a prefix of a long one, for every generator (the preview rule)."""
    fields = [
        {"name": "seq", "generator": "sequence"}, {"name": "u", "generator": "uuid"},
        {"name": "i", "generator": "integer", "distribution": "poisson", "lam": 3},
        {"name": "f", "generator": "float", "distribution": "normal", "decimals": 3},
        {"name": "b", "generator": "boolean"}, {"name": "c", "generator": "choice", "values": ["a", "b"]},
        {"name": "d", "generator": "date", "distribution": "recent"}, {"name": "dt", "generator": "datetime"},
        {"name": "t", "generator": "time"}, {"name": "r", "generator": "regex", "pattern": r"(ab|c)x?[0-9]{2,4}"},
        {"name": "w", "generator": "text.words", "min_words": 1, "max_words": 4},
        {"name": "s", "generator": "text.sentence"}, {"name": "p", "generator": "text.paragraph"},
        {"name": "fn", "generator": "person.first_name"}, {"name": "un", "generator": "person.username"},
        {"name": "ph", "generator": "person.phone"}, {"name": "g", "generator": "person.gender"},
        {"name": "sa", "generator": "address.street_address"}, {"name": "pc", "generator": "address.postcode"},
        {"name": "lat", "generator": "address.latitude"}, {"name": "co", "generator": "company.name"},
        {"name": "jt", "generator": "company.job_title"}, {"name": "url", "generator": "internet.url"},
        {"name": "ip", "generator": "internet.ipv4"}, {"name": "ip6", "generator": "internet.ipv6"},
        {"name": "iban", "generator": "finance.iban"}, {"name": "cc", "generator": "finance.credit_card"},
        {"name": "fx", "generator": "formula", "expression": "i * 2", "null_rate": 0.3},
    ]
    template = synth.parse_template({"name": "all", "fields": fields})
    short = synth.generate_table(template, 5, seed=3)
    long = synth.generate_table(template, 4000, seed=3)
    assert short.to_pylist() == long.slice(0, 5).to_pylist()


def test_adding_or_removing_a_field_keeps_other_values():
    doc = copy.deepcopy(CUSTOMERS)
    base = synth.generate_table(synth.parse_template(doc), 500, seed=8)
    doc["fields"].insert(2, {"name": "extra", "generator": "integer"})
    del doc["fields"][4]  # city
    changed = synth.generate_table(synth.parse_template(doc), 500, seed=8)
    for name in ("id", "name", "email", "born", "amount", "tier", "total"):
        assert changed.column(name).to_pylist() == base.column(name).to_pylist(), name

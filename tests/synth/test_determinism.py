from __future__ import annotations

import copy
import hashlib

import pytest

from runyard import synth
from runyard.synth import BLOCK_ROWS
from tests.support.synth import CUSTOMERS, render

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
    reference = render(customers, "xlsx", ROWS, seed=5)
    assert render(customers, "xlsx", ROWS, seed=5, chunk_rows=7, workers=2) == reference
    # Fed chunk by chunk straight into the encoder (no block staging): the same bytes.
    plan = synth.plan_generation(customers, count=ROWS, seed=5)
    encoder = synth.make_encoder(plan, "xlsx")
    pieces, row = [encoder.header()], 0
    for batch in synth.iter_batches(plan, chunk_rows=10_000):
        pieces.append(encoder.encode(batch, row))
        row += batch.num_rows
    pieces.extend(encoder.finish())
    assert b"".join(pieces) == reference


def test_string_and_integer_seeds(customers):
    assert render(customers, "csv", 20, seed="42") == render(customers, "csv", 20, seed=42)
    assert render(customers, "csv", 20, seed="blue") == render(customers, "csv", 20, seed="blue")
    assert render(customers, "csv", 20, seed="blue") != render(customers, "csv", 20, seed="red")


def test_template_version_is_part_of_the_stream_only_under_seeding_1(customers_doc):
    current = synth.parse_template(customers_doc)
    assert current.seeding == 2
    one = synth.plan_generation(current, count=10, seed=1, version=1)
    two = synth.plan_generation(current, count=10, seed=1, version=2)
    assert b"".join(synth.stream(one, "csv")) == b"".join(synth.stream(two, "csv"))
    old = synth.parse_template(dict(customers_doc, seeding=1))
    one = synth.plan_generation(old, count=10, seed=1, version=1)
    two = synth.plan_generation(old, count=10, seed=1, version=2)
    assert b"".join(synth.stream(one, "csv")) != b"".join(synth.stream(two, "csv"))


def test_seeding_1_reproduces_earlier_output_byte_for_byte(customers_doc):
    """Versions stored under scheme 1 keep their bytes (this hash was made by the engine
    before scheme 2 existed)."""
    customers_doc["fields"] += [
        {"name": "code", "generator": "regex", "pattern": "[A-Z]{4}", "unique": True},
        {"name": "who", "generator": "person.full_name", "person": "other", "unique": True},
        {"name": "lat", "generator": "address.latitude"},
    ]
    template = synth.parse_template(dict(customers_doc, seeding=1))
    plan = synth.plan_generation(template, count=70_000, seed=42, version=3)
    digest = hashlib.sha256(b"".join(synth.stream(plan, "csv"))).hexdigest()
    assert digest == "fd8afbed2131ef1c2735b240d9ee6efc9579f5bf9d0ab0c37c64b4943d4cb872"


def test_a_fields_values_depend_on_its_own_spec_not_on_others(customers_doc):
    base = synth.generate_table(synth.parse_template(customers_doc), 300, seed=8)
    changed_doc = copy.deepcopy(customers_doc)
    changed_doc["fields"][5]["sigma"] = 2  # amount's spec
    changed_doc["fields"][3]["description"] = "where they live"  # documentation only
    changed_doc["fields"][6]["null_rate"] = 0.5  # tier: more nulls, same draws
    changed = synth.generate_table(synth.parse_template(changed_doc), 300, seed=8)
    assert changed.column("amount").to_pylist() != base.column("amount").to_pylist()
    assert changed.column("total").to_pylist() != base.column("total").to_pylist()  # a formula over amount
    for name in ("id", "name", "email", "city", "born"):
        assert changed.column(name).to_pylist() == base.column(name).to_pylist(), name
    kept = [(a, b) for a, b in zip(base.column("tier").to_pylist(), changed.column("tier").to_pylist(),
                                   strict=True) if b is not None]
    assert kept and all(a == b for a, b in kept)


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

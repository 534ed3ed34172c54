from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid

import numpy as np
import pyarrow as pa
import pytest

from runyard import synth
from runyard.synth import GenerationError

N = 3000


def gen(field: dict, count: int = N, seed: int = 1, locale: str = "en_US") -> list:
    template = synth.parse_template({"name": "t", "locale": locale, "fields": [{"name": "v", **field}]})
    return synth.generate_table(template, count, seed=seed).column("v").to_pylist()


def column_type(field: dict) -> pa.DataType:
    template = synth.parse_template({"name": "t", "fields": [{"name": "v", **field}]})
    return synth.plan_generation(template, count=1, seed=1).schema.field("v").type


def test_sequence():
    assert gen({"generator": "sequence", "start": 10, "step": 5}, 4) == [10, 15, 20, 25]


@pytest.mark.parametrize("dist,extra", [
    ("uniform", {"min": -5, "max": 5}), ("normal", {"mean": 0, "sigma": 3, "min": -5, "max": 5}),
    ("lognormal", {"mean": 1, "sigma": 1, "min": -5, "max": 5}), ("exponential", {"scale": 2, "min": -5, "max": 5}),
    ("poisson", {"lam": 2, "min": -5, "max": 5}), ("zipf", {"a": 2, "min": -5, "max": 5}),
])
def test_integer_distributions_in_range(dist, extra):
    values = gen({"generator": "integer", "distribution": dist, **extra})
    assert all(isinstance(v, int) and -5 <= v <= 5 for v in values)
    assert len(set(values)) > 1


def test_float_decimals_and_distribution_shape():
    values = np.array(gen({"generator": "float", "distribution": "normal", "mean": 100, "sigma": 10, "decimals": 2}))
    assert abs(values.mean() - 100) < 1.5 and 8 < values.std() < 12
    assert all(round(v, 2) == v for v in values)
    uniform = gen({"generator": "float", "min": 2.5, "max": 3.5})
    assert all(2.5 <= v <= 3.5 for v in uniform)


def test_boolean_probability():
    values = gen({"generator": "boolean", "probability": 0.2}, 20_000)
    assert 0.18 < sum(values) / len(values) < 0.22


def test_choice_weights():
    values = gen({"generator": "choice", "values": ["a", "b"], "weights": [9, 1]}, 20_000)
    assert set(values) == {"a", "b"} and 0.88 < values.count("a") / len(values) < 0.92


def test_dates_times_in_range():
    dates = gen({"generator": "date", "min": "2020-01-01", "max": "2020-01-31", "distribution": "recent"})
    assert all(dt.date(2020, 1, 1) <= d <= dt.date(2020, 1, 31) for d in dates)
    assert sum(d.day > 15 for d in dates) > sum(d.day <= 15 for d in dates)  # skewed to recent
    stamps = gen({"generator": "datetime", "min": "2021-06-01T00:00:00Z", "max": "2021-06-02T00:00:00"})
    assert all(dt.datetime(2021, 6, 1) <= s <= dt.datetime(2021, 6, 2) for s in stamps)
    times = gen({"generator": "time", "min": "09:00", "max": "17:00"})
    assert all(dt.time(9) <= t <= dt.time(17) for t in times)


def test_uuid_v4():
    values = gen({"generator": "uuid"})
    assert all(uuid.UUID(v).version == 4 for v in values) and len(set(values)) == N


@pytest.mark.parametrize("pattern", [r"[A-Z]{3}-\d{4}", r"(ab|cd)+x?[0-9a-f]{2,5}", r"\w\s\.ü[^a-z]", r"^Z{0,3}$"])
def test_regex_values_match(pattern):
    values = gen({"generator": "regex", "pattern": pattern})
    assert all(re.fullmatch(pattern, v) for v in values), values[:5]


def test_text_generators():
    words = gen({"generator": "text.words", "words": 4})
    assert all(len(w.split(" ")) == 4 for w in words)
    sentences = gen({"generator": "text.sentence", "min_words": 3, "max_words": 5})
    assert all(s[0].isupper() and s.endswith(".") and 3 <= len(s.split()) <= 5 for s in sentences)
    paragraphs = gen({"generator": "text.paragraph", "min_sentences": 2, "max_sentences": 2})
    assert all(p.count(".") >= 2 for p in paragraphs)


def _slug(text: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    return re.sub(r"[^a-z0-9]", "", "".join(c for c in text if not unicodedata.combining(c)))


@pytest.mark.parametrize("locale", ["en_US", "de_DE", "fr_FR", "es_ES", "pt_BR", "ja_JP"])
def test_emails_and_usernames_derive_from_the_same_person(locale):
    template = synth.parse_template({"name": "p", "locale": locale, "fields": [
        {"name": "email", "generator": "person.email"}, {"name": "first", "generator": "person.first_name"},
        {"name": "last", "generator": "person.last_name"}, {"name": "full", "generator": "person.full_name"},
        {"name": "user", "generator": "person.username"}, {"name": "gender", "generator": "person.gender"},
        {"name": "boss", "generator": "person.full_name", "person": "boss"},
    ]})
    rows = synth.generate_table(template, 500, seed=4).to_pylist()
    if locale == "ja_JP":
        return _check_ja(rows)
    for row in rows:
        local = row["email"].split("@")[0]
        assert _slug(row["last"]) in local and local[0] == _slug(row["first"])[0], row
        assert _slug(row["last"]) in row["user"]
        assert row["first"] in row["full"] and row["last"] in row["full"]
        assert row["gender"] in ("male", "female")
    assert sum(r["boss"] != r["full"] for r in rows) > 450  # another group is another person


def _check_ja(rows: list[dict]) -> None:
    from runyard.synth.locales import load_pools

    pools = load_pools("ja_JP")
    romaji = dict(zip(pools.last.values.to_pylist(), pools.last_ascii.to_pylist(), strict=True))
    for row in rows:
        assert romaji[row["last"]] in row["email"]
        assert row["full"] == f"{row['last']} {row['first']}"


def test_gender_consistent_first_names():
    from runyard.synth.locales import load_pools

    pools = load_pools("de_DE")
    male = set(pools.first_male.values.to_pylist())
    female = set(pools.first_female.values.to_pylist())
    template = synth.parse_template({"name": "p", "locale": "de_DE", "fields": [
        {"name": "g", "generator": "person.gender"}, {"name": "f", "generator": "person.first_name"}]})
    for row in synth.generate_table(template, 1000, seed=2).to_pylist():
        assert row["f"] in (female if row["g"] == "female" else male)


@pytest.mark.parametrize("locale", synth.SUPPORTED_LOCALES)
def test_every_locale_generates_people_and_places(locale):
    template = synth.parse_template({"name": "l", "locale": locale, "fields": [
        {"name": g.replace(".", "_"), "generator": g} for g in (
            "person.full_name", "person.email", "person.phone", "address.city", "address.street_address",
            "address.region", "address.postcode", "address.country", "address.country_code", "address.latitude",
            "address.longitude", "company.name", "company.job_title", "text.sentence", "internet.domain",
            "finance.iban")]})
    table = synth.generate_table(template, 200, seed=1)
    for column in table.columns:
        assert column.null_count == 0
    assert all(re.fullmatch(r"[a-z0-9._]+@[a-z0-9.-]+", e) for e in table.column("person_email").to_pylist())
    assert all(-90 <= v <= 90 for v in table.column("address_latitude").to_pylist())


def _iban_valid(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


@pytest.mark.parametrize("country", ["DE", "GB", "FR", "ES", "IT", "NL", "BR"])
def test_iban_check_digits(country):
    values = gen({"generator": "finance.iban", "country": country}, 1000)
    assert all(v.startswith(country) and _iban_valid(v) for v in values)
    assert not _iban_valid(values[0][:4] + ("1" if values[0][4] != "1" else "2") + values[0][5:])


def _luhn_valid(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


@pytest.mark.parametrize("brand,length,prefixes", [("visa", 16, ("4",)), ("mastercard", 16, ("51", "52", "53", "54", "55")),
                                                   ("amex", 15, ("34", "37"))])
def test_credit_card_luhn(brand, length, prefixes):
    values = gen({"generator": "finance.credit_card", "brand": brand}, 1000)
    assert all(len(v) == length and v.startswith(prefixes) and _luhn_valid(v) for v in values)


def test_internet_values():
    assert all(ipaddress.IPv4Address(v) for v in gen({"generator": "internet.ipv4"}))
    assert all(ipaddress.IPv6Address(v) for v in gen({"generator": "internet.ipv6"}))
    assert all(re.fullmatch(r"https://www\.[a-z0-9.-]+\.[a-z.]+/\w+", v) for v in gen({"generator": "internet.url"}))


def test_column_types():
    assert column_type({"generator": "integer"}) == pa.int64()
    assert column_type({"generator": "date"}) == pa.date32()
    assert column_type({"generator": "datetime"}) == pa.timestamp("s")
    assert column_type({"generator": "boolean"}) == pa.bool_()
    assert column_type({"generator": "person.email"}) == pa.string()


def test_null_rate():
    values = gen({"generator": "integer", "null_rate": 0.25}, 20_000)
    assert 0.23 < values.count(None) / len(values) < 0.27


@pytest.mark.parametrize("field,count", [
    ({"generator": "integer", "min": 1, "max": 5000}, 5000),
    ({"generator": "person.full_name"}, 20_000),
    ({"generator": "person.email"}, 20_000),
    ({"generator": "regex", "pattern": r"[A-C]\d{3}"}, 3000),
    ({"generator": "address.city"}, 1500),
    ({"generator": "date", "min": "2000-01-01", "max": "2010-12-31"}, 4000),
    ({"generator": "float", "min": 0, "max": 100, "decimals": 2}, 10_001),
    ({"generator": "internet.ipv4"}, 20_000),
])
def test_unique_is_honoured(field, count):
    values = gen({**field, "unique": True}, count)
    assert len(set(values)) == count


def test_unique_full_name_keeps_email_consistent():
    template = synth.parse_template({"name": "p", "fields": [
        {"name": "email", "generator": "person.email"},
        {"name": "name", "generator": "person.full_name", "unique": True}]})
    rows = synth.generate_table(template, 20_000, seed=5).to_pylist()
    assert len({r["name"] for r in rows}) == len(rows)
    for r in rows[:2000]:
        assert _slug(r["name"].split(" ")[-1]) in r["email"]


@pytest.mark.parametrize("field,count", [
    ({"generator": "choice", "values": ["a", "b", "c"]}, 4),
    ({"generator": "integer", "min": 1, "max": 10}, 11),
    ({"generator": "regex", "pattern": r"[AB]\d"}, 21),
    ({"generator": "boolean"}, 3),
])
def test_unique_refused_before_output_when_space_too_small(field, count):
    template = synth.parse_template({"name": "t", "fields": [{"name": "v", **field, "unique": True}]})
    with pytest.raises(GenerationError) as info:
        synth.plan_generation(template, count=count, seed=1)
    assert info.value.code == "unique_space_too_small"
    assert info.value.details["field"] == "v"
    synth.plan_generation(template, count=count - 1, seed=1)  # exactly the space is fine

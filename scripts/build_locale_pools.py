"""Extract the synthetic-data locale pools from Faker's providers into a versioned snapshot.

Run once per snapshot version; the output under ``src/runyard/synth/locales/data/<version>/``
is committed, so upgrading Faker never changes what an existing template generates.
A new snapshot gets a new version directory and the old one stays loadable.

    .venv/bin/python scripts/build_locale_pools.py --version v1
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import faker
from faker import Faker
from faker.providers.geo import Provider as GeoProvider

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "ja_JP", "zh_CN"]
OUT_ROOT = Path(__file__).resolve().parent.parent / "src" / "runyard" / "synth" / "locales" / "data"

# Letters NFKD does not decompose into ASCII.
_ASCII_EXTRA = {"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}


def ascii_slug(text: str) -> str:
    """Lower-case ASCII form of a name, for e-mail local parts and usernames."""
    text = text.lower()
    text = "".join(_ASCII_EXTRA.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]", "", text)


def provider(fake: Faker, family: str) -> Any:
    return next(p for p in fake.providers if p.__module__.startswith(f"faker.providers.{family}"))


def names_and_weights(values: Iterable[str] | Mapping[str, float]) -> tuple[list[str], list[float] | None]:
    if isinstance(values, Mapping):
        keys = list(values.keys())
        weights = [round(float(values[k]), 6) for k in keys]
        return keys, weights
    return list(dict.fromkeys(values)), None


def sample(fn: Callable[[], str], calls: int, cap: int) -> list[str]:
    """Distinct values of a Faker method, in first-seen order (the seed fixes the order)."""
    seen: dict[str, None] = {}
    for _ in range(calls):
        seen.setdefault(fn(), None)
        if len(seen) >= cap:
            break
    return list(seen)


def phone_patterns(fake: Faker, calls: int = 3000) -> list[str]:
    """Real-looking numbers with their last six digits turned into '#' placeholders.

    Keeping the leading digits keeps the locale's country and area codes; the
    engine randomises the placeholders.
    """
    patterns: dict[str, None] = {}
    for _ in range(calls):
        number = fake.phone_number()
        chars = list(number)
        digits = [i for i, ch in enumerate(chars) if ch.isdigit()]
        for i in digits[-6:]:
            chars[i] = "#"
        patterns.setdefault("".join(chars), None)
    return list(patterns)


def person_pools(fake: Faker, locale: str) -> dict[str, Any]:
    person = provider(fake, "person")
    out: dict[str, Any] = {}
    if locale == "ja_JP":
        # Kanji / romanised pairs keep e-mails consistent with the written name.
        for key, attr in (("first_male", "first_name_male_pairs"), ("first_female", "first_name_female_pairs"),
                          ("last", "last_name_pairs")):
            pairs = list(getattr(person, attr))
            out[key] = [p[0] for p in pairs]
            out[key + "_ascii"] = [ascii_slug(p[2]) for p in pairs]
        return out
    for key, attr in (("first_male", "first_names_male"), ("first_female", "first_names_female"),
                      ("last", "last_names")):
        values, weights = names_and_weights(getattr(person, attr))
        out[key] = values
        if weights is not None:
            out[key + "_weights"] = weights
        if locale != "zh_CN":
            out[key + "_ascii"] = [ascii_slug(v) for v in values]
    if locale == "zh_CN":
        # Faker has no aligned transliteration for zh_CN: pinyin pools, picked by the
        # same person index (modulo), so one person always gets the same e-mail stem.
        out["first_romanized"] = [ascii_slug(v) for v in person.first_romanized_names]
        out["last_romanized"] = [ascii_slug(v) for v in person.last_romanized_names]
    return out


def build_locale(locale: str) -> dict[str, Any]:
    fake = Faker(locale)
    fake.seed_instance(20240101)
    internet = provider(fake, "internet")
    lorem = provider(fake, "lorem")
    job = provider(fake, "job")
    bank = provider(fake, "bank")
    country_code = fake.current_country_code()
    tlds = internet.tlds
    coords = [[float(c[0]), float(c[1])] for c in GeoProvider.land_coords if c[3] == country_code]
    words = list(dict.fromkeys(w for w in lorem.word_list if w.strip()))
    return {
        "locale": locale,
        "source": f"faker {faker.VERSION}",
        "person": person_pools(fake, locale),
        "email_domains": list(dict.fromkeys(internet.free_email_domains)),
        "tlds": list(dict.fromkeys(tlds.keys() if isinstance(tlds, Mapping) else tlds)),
        "phone_patterns": phone_patterns(fake),
        "cities": sample(fake.city, 6000, 1500),
        "streets": sample(fake.street_name, 6000, 1500),
        "regions": sample(fake.administrative_unit, 3000, 200),
        "postcodes": sample(fake.postcode, 4000, 2000),
        "country": fake.current_country(),
        "country_code": country_code,
        "coords": coords,
        "companies": sample(fake.company, 4000, 1500),
        "jobs": list(dict.fromkeys(job.jobs)),
        "words": words,
        "iban": {"country_code": bank.country_code, "bban_format": bank.bban_format},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default="v1")
    args = parser.parse_args()
    out_dir = OUT_ROOT / args.version
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"version": args.version, "faker_version": faker.VERSION, "locales": LOCALES}
    for locale in LOCALES:
        data = build_locale(locale)
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        # mtime=0 keeps the compressed bytes reproducible.
        (out_dir / f"{locale}.json.gz").write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()

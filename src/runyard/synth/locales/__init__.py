"""The versioned locale pool snapshot, loaded as Arrow arrays.

Pools were extracted from Faker's providers by ``scripts/build_locale_pools.py`` and are
committed under ``data/<version>/``; generation reads only these files, never Faker, so
a Faker upgrade cannot change the output of an existing template.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

SNAPSHOT_VERSION = "v1"
DEFAULT_LOCALE = "en_US"
SUPPORTED_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "ja_JP", "zh_CN")
_DATA = Path(__file__).resolve().parent / "data"

# Written-name conventions the pools cannot express.
_NAME_ORDER_FAMILY_FIRST = {"ja_JP", "zh_CN"}
_NAME_SEPARATOR = {"zh_CN": ""}
_NUMBER_BEFORE_STREET = {"en_US", "en_GB", "fr_FR"}
_WORD_SEPARATOR = {"ja_JP": "", "zh_CN": ""}
_SENTENCE_END = {"ja_JP": "。", "zh_CN": "。"}


# Resolution of the weighted-sampling lookup table (weights are honoured to 1/2^18).
WEIGHT_TABLE_SIZE = 1 << 18


@dataclass(frozen=True)
class WeightedPool:
    """Values with an optional lookup table for weighted sampling.

    The table maps 2^18 equal slices of [0, 1) to pool indices (inverse CDF sampled at
    slice midpoints): one gather per draw, instead of a binary search per draw.
    """

    values: pa.Array
    table: np.ndarray | None

    def __len__(self) -> int:
        return len(self.values)

    def indices(self, uniform: np.ndarray) -> np.ndarray:
        """Map uniform [0, 1) draws onto pool indices (weighted when weights exist)."""
        if self.table is None:
            return (uniform * len(self.values)).astype(np.int64)
        return self.table[(uniform * WEIGHT_TABLE_SIZE).astype(np.int64)].astype(np.int64)


@dataclass(frozen=True)
class LocalePools:
    locale: str
    first_male: WeightedPool
    first_female: WeightedPool
    # Male names then female names, with their ASCII slugs aligned index for index.
    first_all: pa.Array
    first_all_ascii: pa.Array
    last: WeightedPool
    last_ascii: pa.Array
    email_domains: pa.Array
    tlds: pa.Array
    phone_patterns: list[str]
    cities: pa.Array
    streets: pa.Array
    regions: pa.Array
    postcodes: pa.Array
    country: str
    country_code: str
    coords: np.ndarray
    companies: pa.Array
    jobs: pa.Array
    words: pa.Array
    words_capitalized: pa.Array
    iban_country: str
    iban_bban_format: str
    family_name_first: bool
    name_separator: str
    number_before_street: bool
    word_separator: str
    sentence_end: str


def _weighted(values: list[str], weights: list[float] | None) -> WeightedPool:
    table = None
    if weights:
        w = np.asarray(weights, dtype=np.float64)
        cdf = np.cumsum(w) / w.sum()
        midpoints = (np.arange(WEIGHT_TABLE_SIZE) + 0.5) / WEIGHT_TABLE_SIZE
        table = np.minimum(np.searchsorted(cdf, midpoints, side="right"), len(values) - 1).astype(np.int32)
    return WeightedPool(pa.array(values, pa.string()), table)


def _aligned_ascii(person: dict[str, Any], key: str, count: int, offset: int = 0) -> list[str]:
    if f"{key}_ascii" in person:
        return list(person[f"{key}_ascii"])
    # zh_CN: no aligned transliteration in the source; index the pinyin pool so a
    # given name always maps to the same romanised stem.
    roman = person["first_romanized" if key.startswith("first") else "last_romanized"]
    return [roman[(offset + i) % len(roman)] for i in range(count)]


def _raw(locale: str, version: str) -> dict[str, Any]:
    path = _DATA / version / f"{locale}.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))


@cache
def load_pools(locale: str, version: str = SNAPSHOT_VERSION) -> LocalePools:
    if locale not in SUPPORTED_LOCALES:
        raise KeyError(locale)
    raw = _raw(locale, version)
    person = raw["person"]
    male = person["first_male"]
    female = person["first_female"]
    male_ascii = _aligned_ascii(person, "first_male", len(male))
    female_ascii = _aligned_ascii(person, "first_female", len(female), offset=len(male))
    words = [w for w in raw["words"] if w]
    return LocalePools(
        locale=locale,
        first_male=_weighted(male, person.get("first_male_weights")),
        first_female=_weighted(female, person.get("first_female_weights")),
        first_all=pa.array(male + female, pa.string()),
        first_all_ascii=pa.array(male_ascii + female_ascii, pa.string()),
        last=_weighted(person["last"], person.get("last_weights")),
        last_ascii=pa.array(_aligned_ascii(person, "last", len(person["last"])), pa.string()),
        email_domains=pa.array(raw["email_domains"], pa.string()),
        tlds=pa.array(raw["tlds"], pa.string()),
        phone_patterns=list(raw["phone_patterns"]),
        cities=pa.array(raw["cities"], pa.string()),
        streets=pa.array(raw["streets"], pa.string()),
        regions=pa.array(raw["regions"], pa.string()),
        postcodes=pa.array(raw["postcodes"], pa.string()),
        country=raw["country"],
        country_code=raw["country_code"],
        coords=np.asarray(raw["coords"], dtype=np.float64).reshape(-1, 2),
        companies=pa.array(raw["companies"], pa.string()),
        jobs=pa.array(raw["jobs"], pa.string()),
        words=pa.array(words, pa.string()),
        words_capitalized=pa.array([w[:1].upper() + w[1:] for w in words], pa.string()),
        iban_country=raw["iban"]["country_code"],
        iban_bban_format=raw["iban"]["bban_format"],
        family_name_first=locale in _NAME_ORDER_FAMILY_FIRST,
        name_separator=_NAME_SEPARATOR.get(locale, " "),
        number_before_street=locale in _NUMBER_BEFORE_STREET,
        word_separator=_WORD_SEPARATOR.get(locale, " "),
        sentence_end=_SENTENCE_END.get(locale, "."),
    )


@cache
def iban_formats(version: str = SNAPSHOT_VERSION) -> dict[str, str]:
    """BBAN formats by IBAN country code, as known to the snapshot's locales."""
    return {p.iban_country: p.iban_bban_format for p in (load_pools(loc, version) for loc in SUPPORTED_LOCALES)}

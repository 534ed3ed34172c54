"""Schema inference: a column type (``types.COLUMN_TYPES``) and semantic kinds per column.

Works on what ``formats.parse_file`` yields (Arrow tables or dict rows) and looks at a sample
of rows only. A type is chosen when at least ``threshold`` of the non-null sampled values fit it
(``confidence`` says how many did); otherwise the column is a string.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.types as pat

from runyard.data.formats import ParseOptions, Reject, parse_file

INT64_MAX = 2**63 - 1
KIND_MIN_CONFIDENCE = 0.5

_INT = re.compile(r"^[-+]?(0|[1-9]\d*)$")  # "007" is an identifier, not a number
_FLOAT = re.compile(r"^[-+]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$|^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
_TIMESTAMP = re.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*(Z|UTC|[+-]\d{2}:?\d{2})?$"
    r"|^\d{1,2}[-/.]\d{1,2}[-/.]\d{4}[T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?\s*(Z|UTC|[+-]\d{2}:?\d{2})?$",
    re.I,
)
_WKT_POINT = re.compile(r"^POINT\s*\(\s*([-+]?\d+(?:\.\d+)?)\s+([-+]?\d+(?:\.\d+)?)\s*\)$", re.I)

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_URL = re.compile(r"^(https?|ftp)://[^\s/$.?#][^\s]*$|^www\.[^\s]+\.[a-z]{2,}[^\s]*$", re.I)
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ISO 3166-1 alpha-2 (plus "UK", which people write for GB).
COUNTRY_ALPHA2 = _words(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG
    EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR
    HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR
    LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG
    NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE
    SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA
    UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW UK"""
)
# ISO 3166-1 alpha-3, the countries most data mentions.
COUNTRY_ALPHA3 = _words(
    """AFG ALB DZA AND AGO ARG ARM AUS AUT AZE BHS BHR BGD BRB BLR BEL BLZ BEN BTN BOL BIH BWA BRA BRN
    BGR BFA BDI KHM CMR CAN CPV CAF TCD CHL CHN COL COM COG COD CRI CIV HRV CUB CYP CZE DNK DJI DMA DOM
    ECU EGY SLV GNQ ERI EST SWZ ETH FJI FIN FRA GAB GMB GEO DEU GHA GRC GRD GTM GIN GNB GUY HTI HND HKG
    HUN ISL IND IDN IRN IRQ IRL ISR ITA JAM JPN JOR KAZ KEN KIR PRK KOR KWT KGZ LAO LVA LBN LSO LBR LBY
    LIE LTU LUX MAC MDG MWI MYS MDV MLI MLT MHL MRT MUS MEX FSM MDA MCO MNG MNE MAR MOZ MMR NAM NRU NPL
    NLD NZL NIC NER NGA MKD NOR OMN PAK PLW PSE PAN PNG PRY PER PHL POL PRT PRI QAT ROU RUS RWA KNA LCA
    VCT WSM SMR STP SAU SEN SRB SYC SLE SGP SVK SVN SLB SOM ZAF SSD ESP LKA SDN SUR SWE CHE SYR TWN TJK
    TZA THA TLS TGO TON TTO TUN TUR TKM TUV UGA UKR ARE GBR USA URY UZB VUT VAT VEN VNM YEM ZMB ZWE"""
)
COUNTRY_NAMES = frozenset(
    n.lower()
    for n in """Afghanistan|Albania|Algeria|Argentina|Armenia|Australia|Austria|Azerbaijan|Bahamas|Bahrain|
    Bangladesh|Belarus|Belgium|Bolivia|Bosnia and Herzegovina|Brazil|Bulgaria|Cambodia|Cameroon|Canada|
    Chile|China|Colombia|Costa Rica|Croatia|Cuba|Cyprus|Czech Republic|Czechia|Denmark|Dominican Republic|
    Ecuador|Egypt|El Salvador|Estonia|Ethiopia|Finland|France|Georgia|Germany|Ghana|Greece|Guatemala|
    Honduras|Hong Kong|Hungary|Iceland|India|Indonesia|Iran|Iraq|Ireland|Israel|Italy|Ivory Coast|Jamaica|
    Japan|Jordan|Kazakhstan|Kenya|Kuwait|Latvia|Lebanon|Libya|Lithuania|Luxembourg|Malaysia|Malta|Mexico|
    Moldova|Monaco|Mongolia|Montenegro|Morocco|Mozambique|Myanmar|Nepal|Netherlands|New Zealand|Nicaragua|
    Nigeria|North Korea|North Macedonia|Norway|Oman|Pakistan|Panama|Paraguay|Peru|Philippines|Poland|
    Portugal|Puerto Rico|Qatar|Romania|Russia|Russian Federation|Rwanda|Saudi Arabia|Senegal|Serbia|
    Singapore|Slovakia|Slovenia|Somalia|South Africa|South Korea|Spain|Sri Lanka|Sudan|Sweden|Switzerland|
    Syria|Taiwan|Tanzania|Thailand|Tunisia|Turkey|Türkiye|Uganda|Ukraine|United Arab Emirates|
    United Kingdom|United States|United States of America|Uruguay|Uzbekistan|Venezuela|Vietnam|Viet Nam|
    Yemen|Zambia|Zimbabwe|England|Scotland|Wales|USA|UK""".replace("\n", "").split("|")
    if n.strip()
)
# ISO 4217 active currency codes.
CURRENCY_CODES = _words(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS
    SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF
    XCD XOF XPF YER ZAR ZMW ZWL"""
)

# The value classes a sampled value falls in, and the types that accept each (most specific first).
_ACCEPTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("bool", frozenset({"bool"})),
    ("int", frozenset({"int"})),
    ("float", frozenset({"int", "float"})),
    ("date", frozenset({"date"})),
    ("timestamp", frozenset({"date", "timestamp"})),
    ("geo", frozenset({"geo"})),
    ("json", frozenset({"json", "geo"})),
)


@dataclass
class InferredColumn:
    name: str
    type: str  # one of types.COLUMN_TYPES
    nullable: bool
    null_count: int
    kinds: list[dict[str, Any]] = field(default_factory=list)  # [{"kind", "confidence"}], best first
    confidence: float = 1.0  # share of the non-null sampled values that fit ``type``

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "null_count": self.null_count,
            "kinds": self.kinds,
            "confidence": self.confidence,
        }


def _is_point(value: dict[str, Any]) -> bool:
    keys = {k.lower(): v for k, v in value.items() if isinstance(k, str)}
    lat = keys.get("lat", keys.get("latitude"))
    lon = keys.get("lon", keys.get("lng", keys.get("longitude")))
    if isinstance(lat, bool) or isinstance(lon, bool):
        return False
    try:
        return -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _valid_date(text: str) -> bool:
    m = _DATE.match(text)
    if not m:
        return False
    if m.group(1):
        y, a, b = int(m.group(1)), int(m.group(2)), int(m.group(3))
        candidates = [(y, a, b)]
    else:
        a, b, y = int(m.group(4)), int(m.group(5)), int(m.group(6))
        candidates = [(y, a, b), (y, b, a)]  # MM/DD/YYYY or DD/MM/YYYY
    for yy, mm, dd in candidates:
        try:
            dt.date(yy, mm, dd)
            return True
        except ValueError:
            continue
    return False


def classify(value: Any) -> str | None:
    """The class of one value: None (null), bool, int, float, date, timestamp, geo, json or string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -INT64_MAX - 1 <= value <= INT64_MAX else "float"
    if isinstance(value, float):
        return None if value != value else "float"  # NaN counts as null
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dict):
        return "geo" if _is_point(value) else "json"
    if isinstance(value, list | tuple):
        return "json"
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if not isinstance(value, str):
        return "string"
    text = value.strip()
    if not text:
        return None
    low = text.lower()
    if low in ("true", "false"):
        return "bool"
    if _INT.match(text):
        return "int" if -INT64_MAX - 1 <= int(text) <= INT64_MAX else "string"
    if _FLOAT.match(text):
        return "float"
    if _DATE.match(text):
        return "date" if _valid_date(text) else "string"
    if _TIMESTAMP.match(text):
        return "timestamp"
    if _WKT_POINT.match(text):
        m = _WKT_POINT.match(text)
        assert m is not None
        return "geo" if _is_point({"lon": m.group(1), "lat": m.group(2)}) else "string"
    if text[0] in "{[" and text[-1] in "}]":
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "string"
        if isinstance(parsed, dict):
            return "geo" if _is_point(parsed) else "json"
        if isinstance(parsed, list):
            return "json"
    return "string"


def _kind_of(text: str) -> list[str]:
    kinds: list[str] = []
    if _EMAIL.match(text):
        kinds.append("email")
    elif _URL.match(text):
        kinds.append("url")
    elif _UUID.match(text):
        kinds.append("uuid")
    elif _PHONE.match(text) and sum(ch.isdigit() for ch in text) >= 7:
        kinds.append("phone")
    if text in COUNTRY_ALPHA2 or text in COUNTRY_ALPHA3 or text.lower() in COUNTRY_NAMES:
        kinds.append("country")
    if text in CURRENCY_CODES:
        kinds.append("currency")
    return kinds


def _arrow_type(t: pa.DataType) -> str | None:
    """The column type an already typed Arrow column has, or None to look at its values."""
    if pat.is_boolean(t):
        return "bool"
    if pat.is_integer(t):
        return "int" if not (pat.is_uint64(t)) else "float"
    if pat.is_floating(t) or pat.is_decimal(t):
        return "float"
    if pat.is_date(t):
        return "date"
    if pat.is_timestamp(t):
        return "timestamp"
    if pat.is_struct(t):
        names = {t.field(i).name.lower() for i in range(t.num_fields)}
        if names & {"lat", "latitude"} and names & {"lon", "lng", "longitude"}:
            return "geo"
        return "json"
    if pat.is_list(t) or pat.is_large_list(t) or pat.is_map(t) or pat.is_fixed_size_list(t):
        return "json"
    if pat.is_time(t) or pat.is_duration(t):
        return "string"
    return None


def _infer_values(name: str, values: list[Any], arrow_type: str | None = None) -> InferredColumn:
    classes = [classify(v) for v in values] if arrow_type is None else []
    nulls = sum(1 for v in values if v is None) if arrow_type is not None else classes.count(None)
    non_null = len(values) - nulls
    if arrow_type is not None:
        col_type, confidence = arrow_type, 1.0
    else:
        counts = Counter(c for c in classes if c is not None)
        col_type, confidence = "string", 1.0
        if non_null:
            for candidate, accepted in _ACCEPTS:
                share = sum(counts[c] for c in accepted) / non_null
                if share >= THRESHOLD:
                    col_type, confidence = candidate, round(share, 4)
                    break
    kinds: list[dict[str, Any]] = []
    if col_type == "string" and non_null:
        kind_counts: Counter[str] = Counter()
        for v in values:
            if isinstance(v, str) and v.strip():
                kind_counts.update(_kind_of(v.strip()))
        for kind, n in kind_counts.most_common():
            share = n / non_null
            if share >= KIND_MIN_CONFIDENCE:
                kinds.append({"kind": kind, "confidence": round(share, 4)})
    return InferredColumn(
        name=name,
        type=col_type,
        nullable=nulls > 0,
        null_count=nulls,
        kinds=kinds,
        confidence=confidence,
    )


THRESHOLD = 0.95  # share of non-null values that must fit a type other than string


def infer_schema(rows: Iterable[dict[str, Any]] | pa.Table, *, sample: int = 10_000) -> list[InferredColumn]:
    """Columns (in first-seen order) with their inferred type and kinds, from at most ``sample`` rows."""
    if isinstance(rows, pa.Table | pa.RecordBatch):
        table = rows.slice(0, sample)
        out: list[InferredColumn] = []
        for name, column in zip(table.column_names, table.columns, strict=True):
            arrow_type = _arrow_type(column.type)
            values = column.to_pylist()
            if arrow_type == "json" or arrow_type == "geo":
                # Struct/list values still go through classify() so a struct of lat/lon is a point.
                arrow_type = None
            out.append(_infer_values(name, values, arrow_type))
        return out
    columns: dict[str, list[Any]] = {}
    for n, row in enumerate(rows):
        if n >= sample:
            break
        for key in row:
            if key not in columns:
                columns[key] = [None] * n  # absent in the rows before: null
        for key, values in columns.items():
            values.append(row.get(key))
    return [_infer_values(name, values) for name, values in columns.items()]


def infer_from_file(
    path: Path, options: ParseOptions, *, sample: int = 10_000
) -> tuple[list[InferredColumn], list[dict[str, Any]], list[Reject]]:
    """(columns, preview rows, rejects) from the first ``sample`` rows of a file."""
    preview: list[dict[str, Any]] = []
    tables: list[pa.Table] = []
    rejects: list[Reject] = []
    batches = parse_file(Path(path), options, batch_rows=min(sample, 10_000), max_rows=sample)
    try:
        for batch in batches:
            rejects.extend(batch.rejects)
            if batch.table is not None:
                tables.append(batch.table)
                preview.extend(batch.table.slice(0, sample - len(preview)).to_pylist())
            elif batch.rows:
                preview.extend(batch.rows[: sample - len(preview)])
            if len(preview) >= sample:
                break
    finally:
        batches.close()
    if tables:
        # Arrow tables keep the types a typed source (Parquet) already has.
        columns = infer_schema(pa.concat_tables(tables).slice(0, sample), sample=sample)
    else:
        columns = infer_schema(preview, sample=sample)
    return columns, preview, rejects

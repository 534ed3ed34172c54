"""The generator registry: names as written in templates → generator classes."""

from __future__ import annotations

from ..errors import TemplateError
from ..options import Options
from ..template import FieldSpec
from .address import Country, CountryCode, Latitude, Longitude, StreetAddress
from .base import FieldGenerator
from .choice import Choice
from .finance import CreditCard, Iban
from .formula import Formula
from .internet import Domain, Ipv4, Ipv6, Url
from .numeric import Boolean, Constant, Float, Integer, Sequence, Uuid
from .person import Email, FirstName, FullName, Gender, LastName, Phone, Username
from .pools import City, Company, JobTitle, Postcode, Region, Street
from .reference import Reference, ReferenceResolver
from .regex import Regex
from .temporal import Date, DateTime, Time
from .text import Paragraph, Sentence, Words

_CLASSES: list[type[FieldGenerator]] = [
    Sequence, Uuid, Integer, Float, Boolean, Constant, Choice, Date, DateTime, Time, Regex,
    Words, Sentence, Paragraph,
    FirstName, LastName, FullName, Gender, Username, Email, Phone,
    StreetAddress, Street, City, Region, Postcode, Country, CountryCode, Latitude, Longitude,
    Company, JobTitle, Domain, Url, Ipv4, Ipv6, Iban, CreditCard,
    Formula, Reference,
]

GENERATORS: dict[str, type[FieldGenerator]] = {cls.name: cls for cls in _CLASSES}

# Short spellings accepted in templates; the canonical name is what gets stored.
ALIASES: dict[str, str] = {
    "int": "integer", "number": "float", "bool": "boolean", "enum": "choice", "pattern": "regex",
    "text": "text.sentence", "words": "text.words", "sentence": "text.sentence", "paragraph": "text.paragraph",
    "company": "company.name", "job_title": "company.job_title", "domain": "internet.domain",
    "url": "internet.url", "ipv4": "internet.ipv4", "ipv6": "internet.ipv6", "iban": "finance.iban",
    "credit_card": "finance.credit_card", "email": "person.email", "phone": "person.phone",
    "first_name": "person.first_name", "last_name": "person.last_name", "full_name": "person.full_name",
    "name": "person.full_name", "username": "person.username", "city": "address.city",
    "country": "address.country", "country_code": "address.country_code", "postcode": "address.postcode",
    "street_address": "address.street_address", "latitude": "address.latitude",
    "longitude": "address.longitude", "region": "address.region",
}


def resolve_name(name: str) -> str | None:
    name = ALIASES.get(name, name)
    return name if name in GENERATORS else None


def build_generator(spec: FieldSpec, locale: str) -> FieldGenerator:
    canonical = resolve_name(spec.generator)
    if canonical is None:
        raise TemplateError(
            f"unknown generator '{spec.generator}'; known generators: {', '.join(sorted(GENERATORS))}",
            field=spec.name, option="generator",
        )
    return GENERATORS[canonical](Options(spec.name, canonical, spec.options), locale)


__all__ = ["ALIASES", "GENERATORS", "FieldGenerator", "ReferenceResolver", "build_generator", "resolve_name"]

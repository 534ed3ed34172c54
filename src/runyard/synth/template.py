"""Templates: parse a JSON/YAML document into a validated, typed model.

The document shape is flat per field: ``name`` and ``generator`` plus the generator's
options beside them, and the common keys ``null_rate``, ``unique``, ``locale`` and
``description``. Parsing builds every generator, so option errors, unknown generators,
malformed regexes and formulas over unknown or later fields are all reported here,
naming the field, before anything is stored or generated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from .errors import TemplateError
from .locales import DEFAULT_LOCALE, SUPPORTED_LOCALES
from .seeding import CURRENT_SEEDING, SEEDING_SCHEMES

if TYPE_CHECKING:
    from .generators.base import FieldGenerator

FIELD_KEYS = frozenset({"name", "generator", "null_rate", "unique", "locale", "description"})
TEMPLATE_KEYS = frozenset({"name", "description", "locale", "fields", "seeding"})
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_FIELDS = 500


@dataclass(frozen=True)
class FieldSpec:
    """One field as written: generator name, its options, and the common settings."""

    name: str
    generator: str
    options: dict[str, Any] = field(default_factory=dict)
    null_rate: float = 0.0
    unique: bool = False
    locale: str | None = None
    description: str | None = None

    @property
    def stream_key(self) -> str:
        """What keys this field's random streams besides its name (seeding scheme 2): the
        generator and its options — not ``description``, ``null_rate`` (a higher rate
        nulls a superset of the rows) or ``unique``."""
        return json.dumps({"generator": self.generator, "options": self.options}, sort_keys=True,
                          separators=(",", ":"), default=str)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "generator": self.generator, **self.options}
        if self.null_rate:
            out["null_rate"] = self.null_rate
        if self.unique:
            out["unique"] = True
        if self.locale:
            out["locale"] = self.locale
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Field:
    """A parsed field: its spec plus the configured generator."""

    spec: FieldSpec
    generator: FieldGenerator

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Template:
    name: str
    fields: tuple[Field, ...]
    locale: str = DEFAULT_LOCALE
    description: str | None = None
    seeding: int = CURRENT_SEEDING

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "locale": self.locale}
        if self.description:
            out["description"] = self.description
        out["fields"] = [f.spec.to_dict() for f in self.fields]
        out["seeding"] = self.seeding
        return out


def load_document(text: str) -> Any:
    """Read a template document written as JSON or YAML."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"template is neither valid JSON nor YAML: {exc}") from None


def parse_locale(value: Any, *, field: str | None = None) -> str:
    if not isinstance(value, str) or value not in SUPPORTED_LOCALES:
        raise TemplateError(
            f"unknown locale {value!r}; supported: {', '.join(SUPPORTED_LOCALES)}", field=field, option="locale"
        )
    return value


def parse_field_spec(raw: Any, index: int) -> FieldSpec:
    if not isinstance(raw, Mapping):
        raise TemplateError(f"fields[{index}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise TemplateError(
            f"fields[{index}].name must be an identifier (letters, digits, _; not starting with a digit), "
            f"got {name!r}",
            field=name if isinstance(name, str) else None,
        )
    generator = raw.get("generator")
    if not isinstance(generator, str) or not generator:
        raise TemplateError("'generator' is required and must be a string", field=name, option="generator")
    null_rate = raw.get("null_rate", 0.0)
    if isinstance(null_rate, bool) or not isinstance(null_rate, int | float) or not 0 <= null_rate <= 1:
        raise TemplateError(f"null_rate must be a number between 0 and 1, got {null_rate!r}", field=name,
                            option="null_rate")
    unique = raw.get("unique", False)
    if not isinstance(unique, bool):
        raise TemplateError(f"unique must be true or false, got {unique!r}", field=name, option="unique")
    locale = raw.get("locale")
    if locale is not None:
        locale = parse_locale(locale, field=name)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise TemplateError("description must be a string", field=name, option="description")
    options = {k: v for k, v in raw.items() if k not in FIELD_KEYS}
    return FieldSpec(name=name, generator=generator, options=options, null_rate=float(null_rate),
                     unique=unique, locale=locale, description=description)


def parse_template(document: Any) -> Template:
    """Validate a template document (dict, or JSON/YAML text) into a :class:`Template`."""
    from .generators import build_generator
    from .generators.formula import validate_formulas

    if isinstance(document, str | bytes):
        document = load_document(document.decode() if isinstance(document, bytes) else document)
    if not isinstance(document, Mapping):
        raise TemplateError("template must be an object with 'name' and 'fields'")
    unknown = sorted(set(document) - TEMPLATE_KEYS)
    if unknown:
        raise TemplateError(f"unknown template key '{unknown[0]}'; allowed: {', '.join(sorted(TEMPLATE_KEYS))}")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TemplateError("template 'name' is required and must be a non-empty string")
    description = document.get("description")
    if description is not None and not isinstance(description, str):
        raise TemplateError("template 'description' must be a string")
    locale = parse_locale(document.get("locale", DEFAULT_LOCALE))
    seeding = document.get("seeding", CURRENT_SEEDING)
    if isinstance(seeding, bool) or seeding not in SEEDING_SCHEMES:
        raise TemplateError(f"template 'seeding' must be one of {', '.join(map(str, SEEDING_SCHEMES))}, "
                            f"got {seeding!r}")
    raw_fields = document.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise TemplateError("template 'fields' must be a non-empty list")
    if len(raw_fields) > MAX_FIELDS:
        raise TemplateError(f"a template has at most {MAX_FIELDS} fields")
    specs = [parse_field_spec(raw, i) for i, raw in enumerate(raw_fields)]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise TemplateError("duplicate field name", field=spec.name)
        seen.add(spec.name)
    fields = tuple(Field(spec, build_generator(spec, spec.locale or locale)) for spec in specs)
    for f in fields:
        if f.spec.unique:
            f.generator.check_unique_supported()
    validate_formulas(fields)
    return Template(name=name.strip(), fields=fields, locale=locale, description=description, seeding=seeding)

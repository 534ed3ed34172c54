"""The column types a dataset can hold, and their Arrow storage types.

One vocabulary serves the catalog, schema inference, coercion and the API:
``int`` (int64), ``float`` (float64), ``bool``, ``date``, ``timestamp`` (UTC, microseconds),
``string``, ``json`` (any JSON value, stored as its JSON text) and ``geo`` (a point, stored as
a ``{lat, lon}`` struct of float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import pyarrow as pa

ColumnType = Literal["int", "float", "bool", "date", "timestamp", "string", "json", "geo"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)

# Hidden columns every stored row carries; user columns may not start with "_".
ROW_ID = "_id"
INGESTION_ID = "_ingestion_id"
INGESTED_AT = "_ingested_at"
METADATA_COLUMNS: tuple[str, ...] = (ROW_ID, INGESTION_ID, INGESTED_AT)
# The entity a row stands for (entity resolution on ingest, data/entities.py). Only parts written
# by entity resolution store it; readers give every other row its own ``_id``: a row is its own
# entity until a resolution says otherwise.
ENTITY_ID = "_entity_id"
HIDDEN_COLUMNS: tuple[str, ...] = (*METADATA_COLUMNS, ENTITY_ID)

MAX_COLUMNS = 1000  # per dataset; a wider row is refused (too_many_columns)
MAX_COLUMN_NAME = 255

GEO_TYPE = pa.struct([("lat", pa.float64()), ("lon", pa.float64())])

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "string": pa.string(),
    "json": pa.string(),
    "geo": GEO_TYPE,
}

METADATA_FIELDS: tuple[pa.Field, ...] = (
    pa.field(ROW_ID, pa.int64(), nullable=False),
    pa.field(INGESTION_ID, pa.string(), nullable=False),
    pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
)
ENTITY_FIELD = pa.field(ENTITY_ID, pa.int64(), nullable=True)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Column:
        return cls(name=str(raw["name"]), type=raw["type"], nullable=bool(raw.get("nullable", True)))  # type: ignore[arg-type]


def arrow_schema(columns: list[Column], *, metadata: bool = False, entity: bool = False) -> pa.Schema:
    """The Arrow schema of ``columns`` (user columns are always nullable in storage: a later
    ingestion may leave them out), with the hidden metadata fields first when asked (and then
    ``_entity_id`` with ``entity``)."""
    fields = [pa.field(c.name, ARROW_TYPES[c.type], nullable=True) for c in columns]
    hidden = [*METADATA_FIELDS, *([ENTITY_FIELD] if entity else [])] if metadata else []
    return pa.schema([*hidden, *fields])


def column_name_error(name: object) -> str | None:
    """Why ``name`` cannot be a user column's name, or None if it can."""
    if not isinstance(name, str) or not name:
        return "a column name must be a non-empty string"
    if len(name) > MAX_COLUMN_NAME:
        return f"a column name is at most {MAX_COLUMN_NAME} characters"
    if name.startswith("_"):
        return "column names starting with '_' are reserved for runyard's metadata columns"
    if not name.isprintable():
        return "a column name may not contain control characters"
    return None

"""POST /runs/search: filters over run columns and nested values, the columns to return."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from runyard.schemas.common import Request

SEARCH_OPS = ("eq", "neq", "in", "nin", "gt", "gte", "lt", "lte", "contains", "startswith", "exists")
MAX_SEARCH_LIMIT = 1000
MAX_SEARCH_OFFSET = 1_000_000
MAX_PROPS = 50


class RunSearchProp(Request):
    """One condition; every condition of a search must hold."""

    field: str = Field(max_length=200, description="a run column (snake_case: status, tool_name, project, "
                       "created_at, …) or a nested value: tags.<key>, inputs.<name>[.<key>…], usage.<key>")
    op: str = Field(json_schema_extra={"enum": list(SEARCH_OPS)},
                    description="eq, neq, in, nin (value: a list), gt, gte, lt, lte, contains, startswith "
                                "(value: a string; case-sensitive), exists (value: true or false)")
    value: Any = Field(default=None, description="a string, number or boolean; a list for in/nin; timestamps "
                       "as RFC 3339 strings")


class RunSearchRequest(Request):
    props: list[RunSearchProp] = Field(default_factory=list, max_length=MAX_PROPS)
    select: list[str] | None = Field(default=None, max_length=100,
                                     description="the columns each row carries; default: every column")
    limit: int = Field(default=100, ge=1, le=MAX_SEARCH_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_SEARCH_OFFSET)
    with_total_count: bool = Field(default=False, description="count every matching run (slower)")
    order: str | None = Field(default=None, max_length=200,
                              description="'<column> asc|desc', several comma-separated; default 'created_at desc'")


class RunSearchPage(BaseModel):
    object: str = "list"
    items: list[dict[str, Any]] = Field(description="one object per run, with only the selected columns")
    total: int | None = Field(default=None, description="every matching run, when with_total_count was asked")
    limit: int
    offset: int
    next_offset: int | None = Field(default=None, description="the offset of the next page; null on the last")

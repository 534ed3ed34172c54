"""Links between datasets (ExactMatch, GeoMatch): the contracts of /links."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request
from runyard.schemas.users import DATA_NAME_PATTERN

MatchType = Literal["ExactMatch", "GeoMatch"]


class LinkEnd(Request):
    namespace: str = Field(min_length=1, max_length=64, pattern=DATA_NAME_PATTERN)
    dataset: str = Field(min_length=1, max_length=64, pattern=DATA_NAME_PATTERN)
    column: str = Field(min_length=1, max_length=255,
                        description="the column; for GeoMatch a geo column or the latitude column")
    lon_column: str | None = Field(default=None, min_length=1, max_length=255,
                                   description="GeoMatch only: the longitude column beside a latitude `column`")


class LinkCreate(Request):
    from_: LinkEnd = Field(alias="from")
    to: LinkEnd
    match_type: MatchType = "ExactMatch"
    options: dict[str, Any] = Field(default_factory=dict, description=(
        "ExactMatch: min_distinct (int >= 1, default 10), min_variation (0-1, default 0); "
        "GeoMatch: distance (> 0, default 1), unit (km|m|mi, default km)"))


class LinkPreviewRequest(Request):
    namespace: str | None = Field(default=None, max_length=64)
    dataset: str | None = Field(default=None, max_length=64)
    from_: LinkEnd | None = Field(default=None, alias="from")
    to: LinkEnd | None = None
    match_type: MatchType = "ExactMatch"
    options: dict[str, Any] = Field(default_factory=dict)


class LinkRecalculate(Request):
    namespace: str = Field(min_length=1, max_length=64)
    dataset: str | None = Field(default=None, max_length=64)
    link_id: str | None = Field(default=None, max_length=40)


class LinkEndView(BaseModel):
    namespace: str
    dataset: str
    column: str
    lon_column: str | None = None


class LinkView(BaseModel):
    id: str
    object: Literal["link"] = "link"
    status: Literal["active", "suggested"]
    match_type: MatchType
    options: dict[str, Any] = Field(default_factory=dict)
    from_: LinkEndView = Field(alias="from", serialization_alias="from")
    to: LinkEndView
    score: float | None = Field(None, description="suggestions: the containment of the smaller column in the other")
    evidence: dict[str, Any] = Field(default_factory=dict, description="overlap counts, sample matching values")
    pair_count: int | None = Field(None, description="matched row pairs (null: not computed)")
    stale: bool = Field(False, description="an end changed since the pairs were computed")
    created_at: str
    computed_at: str | None = None
    created: bool | None = Field(None, description="POST /links: false when the same link existed")


class LinkList(BaseModel):
    object: Literal["list"] = "list"
    items: list[LinkView]
    next_cursor: str | None = None


class LinkPair(BaseModel):
    from_id: int
    to_id: int


class LinkPairs(BaseModel):
    object: Literal["list"] = "list"
    link_id: str
    items: list[LinkPair]
    next_cursor: str | None = None
    total: int | None = None
    from_: LinkEndView = Field(alias="from", serialization_alias="from")
    to: LinkEndView


class PreviewLink(BaseModel):
    id: str | None = None
    match_type: MatchType
    options: dict[str, Any]
    from_: LinkEndView = Field(alias="from", serialization_alias="from")
    to: LinkEndView
    pair_count: int
    evidence: dict[str, Any]
    sample_pairs: list[LinkPair]


class PreviewSuggestion(BaseModel):
    match_type: MatchType
    options: dict[str, Any]
    from_: LinkEndView = Field(alias="from", serialization_alias="from")
    to: LinkEndView
    score: float
    evidence: dict[str, Any]


class LinkPreview(BaseModel):
    object: Literal["link_preview"] = "link_preview"
    links: list[PreviewLink]
    suggestions: list[PreviewSuggestion]


class LinkRecalculation(BaseModel):
    object: Literal["link_recalculation"] = "link_recalculation"
    recalculated: list[LinkView]
    suggested: int


class LinkedRow(BaseModel):
    link_id: str
    match_type: MatchType
    namespace: str
    dataset: str
    row: dict[str, Any]


class LinkedRows(BaseModel):
    object: Literal["list"] = "list"
    items: list[LinkedRow]
    next_cursor: str | None = None

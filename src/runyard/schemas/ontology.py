"""The namespace ontology (issue 17): the contracts of /namespaces/{ns}/ontology."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runyard.schemas.common import Request
from runyard.schemas.links import LinkCreate, LinkEndView, LinkView, MatchType


class OntologyNode(BaseModel):
    namespace: str
    dataset: str
    in_namespace: bool = Field(description="false: a dataset of another namespace an edge reaches")
    columns: list[str] = Field(description="the dataset's columns the edges join")
    link_count: int


class OntologyEdge(BaseModel):
    id: str
    match_type: MatchType
    from_: LinkEndView = Field(alias="from", serialization_alias="from")
    to: LinkEndView
    score: float | None = None
    pair_count: int | None = None
    stale: bool = False
    options: dict[str, Any] = Field(default_factory=dict)


class Ontology(BaseModel):
    object: Literal["ontology"] = "ontology"
    namespace: str
    nodes: list[OntologyNode]
    edges: list[OntologyEdge]
    match_types: dict[str, int] = Field(description="edges per match type")


class OntologyUpdate(Request):
    add: list[str | LinkCreate] = Field(default_factory=list, max_length=200, description=(
        "link ids (a suggestion becomes active) or link specs (as POST /links: created active)"))
    remove: list[str] = Field(default_factory=list, max_length=200, description=(
        "link ids: a link with a score goes back to a suggestion, one without (manual) is deleted"))


class OntologyAdded(BaseModel):
    link: LinkView
    result: Literal["activated", "created", "unchanged"]


class OntologyRemoved(BaseModel):
    id: str
    result: Literal["suggested", "deleted", "unchanged"]


class OntologyUpdated(BaseModel):
    object: Literal["ontology_update"] = "ontology_update"
    added: list[OntologyAdded]
    removed: list[OntologyRemoved]
    ontology: Ontology


class OntologyCurate(Request):
    dataset: str | None = Field(default=None, max_length=64, description="only the links touching this dataset")
    activate: bool = Field(False, description="activate the selected links")
    provider: str | None = Field(default=None, max_length=100,
                                 description="the provider reviewing the borderline links (default: the workspace's)")
    model: str | None = Field(default=None, max_length=200)


class CuratedLink(BaseModel):
    link: LinkView
    decision: Literal["keep", "select", "reject", "review"]
    reason: str
    reviewed_by: Literal["rules", "model"] = "rules"
    activated: bool = False


class ModelReview(BaseModel):
    provider: str
    model: str | None = None
    reviewed: int = Field(description="borderline links the model decided")
    error: str | None = Field(None, description="the model call failed: the rules' decisions stand")


class OntologyCuration(BaseModel):
    object: Literal["ontology_curation"] = "ontology_curation"
    namespace: str
    dataset: str | None = None
    datasets_processed: int
    total_selected: int
    activated: bool
    provider: str | None = None
    model: str | None = None
    model_review: ModelReview | None = Field(None, description="null: no provider configured (rules only)")
    curated_links: list[CuratedLink]

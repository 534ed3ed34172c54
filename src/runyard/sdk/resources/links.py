"""``client.links``: links between datasets (ExactMatch, GeoMatch), active and suggested,
their matched row pairs and the rows linked to one row (docs/links.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from .._base import RequestOptions, Timeout
from .._endpoint import Listing, Plan, Send, endpoint, listing
from ..models import RunyardModel
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["AsyncLinks", "Link", "LinkEnd", "LinkPair", "LinkedRow", "Links"]


class LinkEnd(RunyardModel):
    namespace: str
    dataset: str
    column: str
    #: GeoMatch with a latitude ``column``: the longitude column.
    lon_column: str | None = None


class Link(RunyardModel):
    """A link: ``status`` ``active`` or ``suggested``, its score, evidence and pair count."""

    id: str
    status: str
    match_type: str
    options: dict[str, Any] = Field(default_factory=dict)
    from_: LinkEnd = Field(alias="from")
    to: LinkEnd
    score: float | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    pair_count: int | None = None
    stale: bool = False
    created_at: str | None = None
    computed_at: str | None = None
    #: ``create``: False when the same link existed (it is returned unchanged).
    created: bool | None = None


class LinkPair(RunyardModel):
    from_id: int
    to_id: int


class LinkedRow(RunyardModel):
    link_id: str
    match_type: str
    namespace: str
    dataset: str
    row: dict[str, Any]


EndSpec = str | Mapping[str, Any]


def _end(end: EndSpec) -> dict[str, Any]:
    """``"ns/ds.column"`` (or ``"ns/ds.lat,lon"`` for GeoMatch) or a mapping."""
    if isinstance(end, Mapping):
        return dict(end)
    ns, sep, rest = str(end).partition("/")
    ds, dot, column = rest.partition(".")
    if not (sep and dot and ns and ds and column):
        raise ValueError(f"a link end is 'namespace/dataset.column', not {end!r}")
    lat, comma, lon = column.partition(",")
    return compact(namespace=ns, dataset=ds, column=lat, lon_column=lon if comma else None)


class LinksAPI:
    """``client.links``, written once for :class:`Links` and :class:`AsyncLinks`."""

    @listing
    def list(self, namespace: str, *, dataset: str | None = None, status: str | None = None,
             timeout: Timeout = None) -> Listing[Link]:
        """Active and suggested links of a namespace's datasets (or one dataset's)."""
        return Listing(Link, lambda cursor: RequestOptions(
            "GET", "/links", params=compact(namespace=namespace, dataset=dataset, status=status), timeout=timeout))

    @endpoint
    def create(self, from_: EndSpec, to: EndSpec, *, match_type: str = "ExactMatch",
               options: Mapping[str, Any] | None = None, timeout: Timeout = None) -> Plan[Link]:
        """A manual link, e.g. ``create("sales/orders.customer", "crm/customers.id")``; the
        same link existing is returned with ``created == False``."""
        body = {"from": _end(from_), "to": _end(to), "match_type": match_type, "options": dict(options or {})}
        opts = RequestOptions("POST", "/links", json=body, idempotency_key="", timeout=timeout)
        return Link.model_validate((yield Send(opts)).json())

    @endpoint
    def get(self, link_id: str, *, timeout: Timeout = None) -> Plan[Link]:
        return Link.model_validate((yield Send(RequestOptions("GET", f"/links/{seg(link_id)}",
                                                              timeout=timeout))).json())

    @endpoint
    def preview(self, from_: EndSpec | None = None, to: EndSpec | None = None, *, namespace: str | None = None,
                dataset: str | None = None, match_type: str = "ExactMatch",
                options: Mapping[str, Any] | None = None, timeout: Timeout = None) -> Plan[dict[str, Any]]:
        """What a recalculation would produce, nothing saved: one link's pairs (``from_``,
        ``to``) or a namespace's suggestions (``namespace``, ``dataset``)."""
        body: dict[str, Any] = compact(namespace=namespace, dataset=dataset)
        if from_ is not None or to is not None:
            body.update({"from": _end(from_) if from_ is not None else None,
                         "to": _end(to) if to is not None else None,
                         "match_type": match_type, "options": dict(options or {})})
        opts = RequestOptions("POST", "/links/preview", json=body, idempotency_key="", timeout=timeout)
        return dict((yield Send(opts)).json())

    @endpoint
    def recalculate(self, namespace: str, *, dataset: str | None = None, link_id: str | None = None,
                    timeout: Timeout = None) -> Plan[dict[str, Any]]:
        body = compact(namespace=namespace, dataset=dataset, link_id=link_id)
        opts = RequestOptions("POST", "/links/recalculate", json=body, idempotency_key="", timeout=timeout)
        return dict((yield Send(opts)).json())

    @listing
    def pairs(self, link_id: str, *, limit: int | None = None, timeout: Timeout = None) -> Listing[LinkPair]:
        """Matched row pairs (``_id`` of the from row, ``_id`` of the to row), paged."""
        return Listing(LinkPair, lambda cursor: RequestOptions(
            "GET", f"/links/{seg(link_id)}/pairs", params=compact(cursor=cursor, limit=limit), timeout=timeout))

    @endpoint
    def delete(self, link_id: str, *, timeout: Timeout = None) -> Plan[None]:
        yield Send(RequestOptions("DELETE", f"/links/{seg(link_id)}", timeout=timeout))

    @listing
    def linked(self, namespace: str, dataset: str, row_id: int, *, timeout: Timeout = None) -> Listing[LinkedRow]:
        """The rows of other datasets that active links match with row ``row_id``."""
        return Listing(LinkedRow, lambda cursor: RequestOptions(
            "GET", f"/namespaces/{seg(namespace)}/datasets/{seg(dataset)}/rows/{int(row_id)}/linked",
            timeout=timeout))


    @endpoint
    def ontology(self, namespace: str, *, timeout: Timeout = None) -> Plan[dict[str, Any]]:
        """The namespace's ontology: ``nodes`` (datasets) and ``edges`` (its active links)."""
        return dict((yield Send(RequestOptions("GET", f"/namespaces/{seg(namespace)}/ontology",
                                               timeout=timeout))).json())

    @endpoint
    def update_ontology(self, namespace: str, *, add: list[str | Mapping[str, Any]] | None = None,
                        remove: list[str] | None = None, timeout: Timeout = None) -> Plan[dict[str, Any]]:
        """Add links (ids of suggestions, or specs as for ``create``: ``{"from": "ns/ds.col",
        "to": …}``) to the ontology and remove links (a scored one goes back to a suggestion,
        a manual one is deleted)."""
        items: list[Any] = []
        for a in add or []:
            if isinstance(a, Mapping):
                a = {**a, "from": _end(a["from"]), "to": _end(a["to"])}
            items.append(a)
        opts = RequestOptions("PATCH", f"/namespaces/{seg(namespace)}/ontology",
                              json={"add": items, "remove": list(remove or [])}, idempotency_key="", timeout=timeout)
        return dict((yield Send(opts)).json())

    @endpoint
    def curate(self, namespace: str, *, dataset: str | None = None, activate: bool = False,
               provider: str | None = None, model: str | None = None,
               timeout: Timeout = None) -> Plan[dict[str, Any]]:
        """The deterministic curator's decisions over the namespace's links (``activate``:
        the selected ones become active)."""
        body = {**compact(dataset=dataset, provider=provider, model=model), "activate": activate}
        opts = RequestOptions("POST", f"/namespaces/{seg(namespace)}/ontology/curate", json=body,
                              idempotency_key="", timeout=timeout)
        return dict((yield Send(opts)).json())


class Links(LinksAPI, SyncResource):
    """``client.links``: links between datasets."""


class AsyncLinks(LinksAPI, AsyncResource):
    """``client.links`` of :class:`~runyard.AsyncClient` (coroutines)."""

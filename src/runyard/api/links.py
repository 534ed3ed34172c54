"""/links, /namespaces/{ns}/datasets/{ds}/rows/{row_id}/linked (services.links) and
/namespaces/{ns}/ontology (services.ontology)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from starlette.convertors import Convertor, register_url_convertor

from runyard.api.deps import PlatformDep, PrincipalDep
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.links import (
    LinkCreate,
    LinkedRows,
    LinkList,
    LinkPairs,
    LinkPreview,
    LinkPreviewRequest,
    LinkRecalculate,
    LinkRecalculation,
    LinkView,
)
from runyard.schemas.ontology import (
    Ontology,
    OntologyCurate,
    OntologyCuration,
    OntologyUpdate,
    OntologyUpdated,
)
from runyard.services.ontology import OntologyService

router = APIRouter(tags=["links"], responses=error_responses(*AUTHENTICATED))
RESERVED = ("preview", "recalculate")  # segments after /links/ that name routes, never a link


class _LinkId(Convertor[str]):
    """A link id in a path: any segment but the reserved ones, so ``GET /links/preview`` is
    405 (Allow: POST), not a lookup of a link called "preview"."""

    regex = f"(?!(?:{'|'.join(RESERVED)})$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("link_id", _LinkId())


@router.get("/links", response_model=LinkList, responses=error_responses(404))
async def list_links(platform: PlatformDep, principal: PrincipalDep,
                     namespace: str = Query(min_length=1, max_length=64), dataset: str | None = Query(None, max_length=64),
                     status: str | None = Query(None, pattern="^(active|suggested)$")) -> dict:
    """Active and suggested links of a namespace's datasets (or one dataset's), with their
    scores and evidence; only links whose both ends this key can read."""
    return await in_thread(platform.links.list, principal, namespace, dataset, status)


@router.post("/links", status_code=201, response_model=LinkView, responses={
    200: {"model": LinkView, "description": "the same link existed: it, with `created: false`"},
    **error_responses(404)})
async def create_link(body: LinkCreate, platform: PlatformDep, principal: PrincipalDep) -> object:
    """A manual (active) link; its matched row pairs are computed before the answer."""
    spec = body.model_dump(by_alias=True)
    view, created = await in_thread(platform.links.create, principal, spec)
    view["created"] = created
    if created:
        return view
    return JSONResponse(LinkView.model_validate(view).model_dump(mode="json", by_alias=True), status_code=200)


@router.post("/links/preview", response_model=LinkPreview, responses=error_responses(404))
async def preview_links(body: LinkPreviewRequest, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """What a recalculation would produce (one link's pairs, or a namespace's suggestions and
    active links), nothing saved."""
    return await in_thread(platform.links.preview, principal, body.model_dump(by_alias=True))


@router.post("/links/recalculate", response_model=LinkRecalculation, responses=error_responses(404))
async def recalculate_links(body: LinkRecalculate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.links.recalculate, principal, body.namespace, body.dataset, body.link_id)


@router.get("/links/{link_id:link_id}", response_model=LinkView, responses=error_responses(404))
async def get_link(link_id: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.links.get, principal, link_id)


@router.get("/links/{link_id:link_id}/pairs", response_model=LinkPairs, responses=error_responses(404))
async def link_pairs(link_id: str, platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                     limit: int = Query(100, ge=1, le=1000)) -> dict:
    """Matched row pairs (``_id`` of the from row, ``_id`` of the to row), paged."""
    return await in_thread(platform.links.pairs, principal, link_id, cursor=cursor, limit=limit)


@router.delete("/links/{link_id:link_id}", status_code=204, responses=error_responses(404))
async def delete_link(link_id: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.links.delete, principal, link_id)
    return Response(status_code=204)


@router.get("/namespaces/{ns}/datasets/{ds}/rows/{row_id}/linked", response_model=LinkedRows,
            responses=error_responses(404))
async def linked_rows(ns: str, ds: str, row_id: int, platform: PlatformDep, principal: PrincipalDep,
                      limit: int = Query(100, ge=1, le=100)) -> dict:
    """The rows of other datasets that active links match with this row (by ``_id``)."""
    return await in_thread(platform.links.linked, principal, ns, ds, row_id, limit)


@router.get("/namespaces/{ns}/ontology", response_model=Ontology, responses=error_responses(404))
async def get_ontology(ns: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """The namespace's ontology: the active links touching it that this key can read both
    ends of, as datasets (nodes) and links (edges) with match types and scores."""
    return await in_thread(OntologyService(platform.links).get, principal, ns)


@router.patch("/namespaces/{ns}/ontology", response_model=OntologyUpdated, responses=error_responses(400, 404))
async def update_ontology(ns: str, body: OntologyUpdate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """Add links (ids of suggestions to activate, or specs to create active) and remove them
    (a link with a score goes back to a suggestion; a manual one without is deleted)."""
    add = [a if isinstance(a, str) else a.model_dump(by_alias=True) for a in body.add]
    return await in_thread(OntologyService(platform.links).update, principal, ns, add, body.remove)


@router.post("/namespaces/{ns}/ontology/curate", response_model=OntologyCuration, responses=error_responses(404))
async def curate_ontology(ns: str, body: OntologyCurate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """A deterministic curator over the links touching the namespace (or one dataset): each
    decision with its reason; ``activate`` activates the selected ones."""
    return await in_thread(OntologyService(platform.links, platform.llm).curate, principal, ns, body.dataset,
                           activate=body.activate, provider=body.provider, model=body.model)

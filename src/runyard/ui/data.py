"""/ui/data: namespaces, a namespace's datasets, links and ontology, a dataset's schema, sample
rows (paged with the query service's cursors) and ingestions (refreshed while one goes).

Every read and change goes through the same services as the API (datasets, queries,
ingestions, links, ontology) with the session's principal; the buttons a key may not use
are not shown, and the services refuse them anyway."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from runyard.api.offload import in_thread
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.links import CHANGE_LINKS
from runyard.services.ontology import OntologyService
from runyard.services.uploads import UPLOAD_DATA
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 100
SAMPLE_ROWS = 50
INGESTIONS_SHOWN = 20
GOING = ("pending", "processing")  # ingestion statuses the page keeps refreshing for


def dataset_url(namespace: str, dataset: str) -> str:
    return f"/ui/data/namespaces/{namespace}/datasets/{dataset}"


@router.get("/data", response_class=HTMLResponse)
async def namespaces_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    page = await in_thread(lambda: platform_of(request).namespaces.list(
        session.principal, cursor=cursor or None, limit=PAGE))
    return render(request, session, "data/namespaces.html", namespaces=page.items, next_cursor=page.next_cursor)


def _namespace_context(platform: Platform, principal: Principal, ns: str, cursor: str | None) -> dict[str, Any]:
    namespace = platform.namespaces.get(principal, ns)  # 404 for one this key may not see
    page = platform.datasets.list(principal, ns, cursor=cursor or None, limit=PAGE)
    return {"namespace": namespace, "datasets": page.items, "next_cursor": page.next_cursor,
            "links": platform.links.list(principal, ns)["items"], "ontology": OntologyService(platform.links, platform.llm).get(principal, ns),
            "can_upload": UPLOAD_DATA.allows(principal), "can_link": CHANGE_LINKS.allows(principal)}


@router.get("/data/namespaces/{ns}", response_class=HTMLResponse)
async def namespace_page(request: Request, ns: str, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_namespace_context, platform_of(request), session.principal, ns, cursor)
    return render(request, session, "data/namespace.html", **context)


def _ingestions(platform: Platform, principal: Principal, ns: str, ds: str) -> dict[str, Any]:
    items = platform.ingestions.list(principal, ns, ds, limit=INGESTIONS_SHOWN)
    return {"ingestions": items, "going": any(i["status"] in GOING for i in items),
            "ingestions_url": dataset_url(ns, ds) + "/ingestions"}


def _dataset_context(platform: Platform, principal: Principal, ns: str, ds: str,
                     cursor: str | None) -> dict[str, Any]:
    dataset = platform.datasets.get(principal, ns, ds)  # 404 for one this key may not read
    sample = platform.queries.run(principal, query="*", namespace=ns, dataset=ds, limit=SAMPLE_ROWS,
                                  cursor=cursor or None)
    assert isinstance(sample, dict)  # a JSON result, never a stream
    return {"dataset": dataset, "sample": sample, "cursor": cursor, "can_upload": UPLOAD_DATA.allows(principal),
            **_ingestions(platform, principal, ns, ds)}


@router.get("/data/namespaces/{ns}/datasets/{ds}", response_class=HTMLResponse)
async def dataset_page(request: Request, ns: str, ds: str, session: SessionDep,
                       cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_dataset_context, platform_of(request), session.principal, ns, ds, cursor)
    return render(request, session, "data/dataset.html", **context)


@router.get("/data/namespaces/{ns}/datasets/{ds}/ingestions", response_class=HTMLResponse)
async def dataset_ingestions(request: Request, ns: str, ds: str, session: SessionDep) -> HTMLResponse:
    """The ingestions table alone: the dataset page polls it while an ingestion goes."""
    context = await in_thread(_ingestions, platform_of(request), session.principal, ns, ds)
    return render(request, session, "data/_ingestions.html", **context)


@router.post("/data/namespaces/{ns}/links", response_class=HTMLResponse, response_model=None)
async def create_link(request: Request, ns: str, session: WriteSessionDep, from_dataset: str = Form(""),
                      from_column: str = Form(""), to_namespace: str = Form(""), to_dataset: str = Form(""),
                      to_column: str = Form(""), match_type: str = Form("ExactMatch")) -> Response:
    """A manual link from a dataset of this namespace (as ``POST /links``)."""
    platform = platform_of(request)
    CHANGE_LINKS.check(session.principal)  # a viewer is refused before anything is read
    spec = {"from": {"namespace": ns, "dataset": from_dataset.strip(), "column": from_column.strip()},
            "to": {"namespace": to_namespace.strip() or ns, "dataset": to_dataset.strip(),
                   "column": to_column.strip()},
            "match_type": match_type}
    try:
        if match_type not in ("ExactMatch", "GeoMatch"):
            raise ValidationFailed("match_type must be ExactMatch or GeoMatch", details={"field": "match_type"})
        for end in ("from", "to"):
            if not spec[end]["dataset"] or not spec[end]["column"]:
                raise ValidationFailed(f"give the {end} dataset and column", details={"field": end})
        await in_thread(platform.links.create, session.principal, spec)
    except ValidationFailed as exc:
        context = await in_thread(_namespace_context, platform, session.principal, ns, None)
        return render(request, session, "data/namespace.html", status=400, link_error=exc.message,
                      link_form=spec, **context)
    return redirect(request, f"/ui/data/namespaces/{ns}#links")


@router.post("/data/namespaces/{ns}/links/{link_id}/delete", response_model=None)
async def delete_link(request: Request, ns: str, link_id: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).links.delete, session.principal, link_id)
    return redirect(request, f"/ui/data/namespaces/{ns}#links")

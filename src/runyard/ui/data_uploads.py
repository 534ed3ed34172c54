"""/ui/data/uploads: the two calls of a browser upload that need the session — make the upload
and complete it. In between, data.js PUTs each part to the signed part URL the upload service
gave (``PUT /api/v1/uploads/{id}/parts/{n}``, no key: the signature is the authorization),
with XMLHttpRequest so the page shows the bytes as they leave.

Both answer JSON for the script (``{"error": {"code", "message"}}`` on a refusal) and take the
session's CSRF token in the ``X-CSRF-Token`` header; the upload service authorizes them as it
does ``POST /uploads`` and ``POST /uploads/{id}/complete``."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from runyard.api.bodies import json_body
from runyard.api.offload import in_thread
from runyard.schemas.datasets import UploadComplete, UploadCreate
from runyard.services.errors import DomainError, Unauthenticated, ValidationFailed
from runyard.ui.core import UiRoute, WriteSessionDep, platform_of
from runyard.ui.data import dataset_url

router = APIRouter(route_class=UiRoute, include_in_schema=False)
M = TypeVar("M", bound=BaseModel)


def _refusal(exc: DomainError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)


async def _body(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate(await json_body(request))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed(f"{field}: {first['msg']}", details={"field": field}) from None


def _relative(url: str) -> str:
    """A part URL as a path on this server: the browser PUTs to the origin it is on, whatever
    host name the server saw."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@router.post("/data/uploads")
async def create_upload(request: Request, session: WriteSessionDep) -> JSONResponse:
    try:
        body = await _body(request, UploadCreate)
        view: dict[str, Any] = await in_thread(lambda: platform_of(request).uploads.create(
            session.principal, filename=body.filename, size=body.size, part_size=body.part_size,
            base_url=str(request.base_url)))
    except Unauthenticated:
        raise
    except DomainError as exc:
        return _refusal(exc)
    parts = [{**p, "url": _relative(p["url"])} for p in view["parts"]]
    return JSONResponse({"id": view["id"], "key": view["key"], "part_size": view["part_size"], "parts": parts},
                        status_code=201)


@router.post("/data/uploads/{upload_id}/complete")
async def complete_upload(request: Request, upload_id: str, session: WriteSessionDep) -> JSONResponse:
    try:
        body = await _body(request, UploadComplete)
        ingestion = await in_thread(lambda: platform_of(request).uploads.complete(
            session.principal, upload_id, key=body.key, parts=[p.model_dump() for p in body.parts],
            namespace=body.namespace, dataset=body.dataset, name=body.name, create=body.create,
            options=body.options.model_dump(exclude_none=True) if body.options else None))
    except Unauthenticated:
        raise
    except DomainError as exc:
        return _refusal(exc)
    return JSONResponse({"ingestion": ingestion, "url": dataset_url(body.namespace, body.dataset)},
                        status_code=202)

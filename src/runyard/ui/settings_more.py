"""The rest of /ui/settings: users (admins list, create, change roles, remove), connections
(list, verify, metadata), model providers (admins), workspace files (list, upload, download,
delete) and usage by day. Each service decides who may do what, exactly as for the API;
the pages only hide the buttons a key could not use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.datastructures import UploadFile

from runyard.api.offload import in_thread
from runyard.services.access import ROLES, Principal
from runyard.services.connections import MANAGE_CONNECTIONS
from runyard.services.errors import ValidationFailed
from runyard.services.llm import MANAGE_PROVIDERS
from runyard.services.users import MANAGE_USERS
from runyard.services.workspace_files import WRITE_FILES
from runyard.timeutil import utcnow
from runyard.ui.core import SessionDep, UiRoute, WriteSessionDep, platform_of, redirect, render
from runyard.wiring import Platform

router = APIRouter(route_class=UiRoute, include_in_schema=False)
PAGE = 100
USAGE_DAYS = 30
UPLOAD_CHUNK = 1024 * 1024


# -- users --------------------------------------------------------------------------------------
def _users(platform: Platform, principal: Principal, cursor: str | None) -> dict[str, Any]:
    can_manage = MANAGE_USERS.allows(principal)
    page = platform.users.list(principal, cursor=cursor or None, limit=PAGE) if can_manage else None
    return {"users": page.items if page else [], "next_cursor": page.next_cursor if page else None,
            "can_manage": can_manage, "roles": ROLES, "me": platform.users.me(principal)}


@router.get("/settings/users", response_class=HTMLResponse)
async def users_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_users, platform_of(request), session.principal, cursor)
    return render(request, session, "settings/users.html", **context)


@router.post("/settings/users", response_class=HTMLResponse, response_model=None)
async def create_user(request: Request, session: WriteSessionDep, username: str = Form(""),
                      role: str = Form("member"), password: str = Form("")) -> Response:
    platform = platform_of(request)
    try:
        await in_thread(lambda: platform.users.create(session.principal, username=username.strip(), role=role,
                                                      password=password or None))
    except ValidationFailed as exc:
        context = await in_thread(_users, platform, session.principal, None)
        return render(request, session, "settings/users.html", status=400, error=exc.message,
                      form={"username": username, "role": role}, **context)
    return redirect(request, "/ui/settings/users")


@router.post("/settings/users/{username}/role", response_model=None)
async def change_role(request: Request, username: str, session: WriteSessionDep, role: str = Form("")
                      ) -> Response:
    await in_thread(lambda: platform_of(request).users.update(session.principal, username, role=role))
    return redirect(request, "/ui/settings/users")


@router.post("/settings/users/{username}/remove", response_model=None)
async def remove_user(request: Request, username: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).users.delete, session.principal, username)
    return redirect(request, "/ui/settings/users")


# -- connections --------------------------------------------------------------------------------
def _connections(platform: Platform, principal: Principal, cursor: str | None) -> dict[str, Any]:
    page = platform.connections.list(principal, cursor=cursor or None, limit=PAGE)
    return {"connections": page.items, "next_cursor": page.next_cursor,
            "can_manage": MANAGE_CONNECTIONS.allows(principal)}


@router.get("/settings/connections", response_class=HTMLResponse)
async def connections_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_connections, platform_of(request), session.principal, cursor)
    return render(request, session, "settings/connections.html", **context)


@router.post("/settings/connections/{ref}/verify", response_class=HTMLResponse, response_model=None)
async def verify_connection(request: Request, ref: str, session: WriteSessionDep) -> Response:
    """A real check (it may take a few seconds); its outcome becomes the listed status."""
    await in_thread(platform_of(request).connections.verify, session.principal, ref)
    return redirect(request, "/ui/settings/connections")


@router.get("/settings/connections/{ref}/metadata", response_class=HTMLResponse)
async def connection_metadata(request: Request, ref: str, session: SessionDep) -> HTMLResponse:
    """What the connection offers (tables, operations, tools…), asked of the remote now."""
    found = await in_thread(platform_of(request).connections.metadata, session.principal, ref)
    return render(request, session, "settings/connection_metadata.html", found=found)


# -- model providers ----------------------------------------------------------------------------
@router.get("/settings/providers", response_class=HTMLResponse)
async def providers_page(request: Request, session: SessionDep) -> HTMLResponse:
    can_manage = MANAGE_PROVIDERS.allows(session.principal)
    providers = (await in_thread(platform_of(request).llm.list, session.principal)).items if can_manage else []
    return render(request, session, "settings/providers.html", providers=providers, can_manage=can_manage)


# -- workspace files ----------------------------------------------------------------------------
def _files(platform: Platform, principal: Principal, cursor: str | None) -> dict[str, Any]:
    page = platform.workspace_files.list(principal, cursor=cursor or None, limit=PAGE)
    return {"files": page.items, "next_cursor": page.next_cursor, "can_write": WRITE_FILES.allows(principal),
            "storage": platform.workspace_files.usage(principal)}


@router.get("/settings/files", response_class=HTMLResponse)
async def files_page(request: Request, session: SessionDep, cursor: str | None = None) -> HTMLResponse:
    context = await in_thread(_files, platform_of(request), session.principal, cursor)
    return render(request, session, "settings/files.html", **context)


def _store(platform: Platform, principal: Principal, upload: UploadFile, name: str, overwrite: bool
           ) -> dict[str, Any]:
    """Copy the (already spooled) upload into the service's sink in chunks and commit it."""
    sink = platform.workspace_files.begin_upload(principal)
    try:
        upload.file.seek(0)
        while chunk := upload.file.read(UPLOAD_CHUNK):
            sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    return platform.workspace_files.commit(principal, sink, name=name, content_type=upload.content_type,
                                           overwrite=overwrite)


@router.post("/settings/files", response_class=HTMLResponse, response_model=None)
async def upload_file(request: Request, session: WriteSessionDep) -> Response:
    platform = platform_of(request)
    WRITE_FILES.check(session.principal)
    form = await request.form()
    upload = form.get("file")
    name = str(form.get("name") or "").strip()
    overwrite = form.get("overwrite") == "true"
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ValidationFailed("choose a file to upload", code="missing_file", details={"field": "file"})
        await in_thread(_store, platform, session.principal, upload, name or upload.filename, overwrite)
    except ValidationFailed as exc:
        context = await in_thread(_files, platform, session.principal, None)
        return render(request, session, "settings/files.html", status=400, error=exc.message, **context)
    return redirect(request, "/ui/settings/files")


@router.get("/settings/files/download/{name:path}", response_model=None)
async def download_file(request: Request, name: str, session: SessionDep) -> FileResponse:
    record = await in_thread(platform_of(request).workspace_files.get, session.principal, name)
    response = FileResponse(record["path"], media_type=record["content_type"], filename=record["name"].rsplit("/")[-1],
                            content_disposition_type="attachment")
    response.headers["content-security-policy"] = "sandbox; default-src 'none'"  # never rendered in this origin
    return response


@router.post("/settings/files/delete/{name:path}", response_model=None)
async def delete_file(request: Request, name: str, session: WriteSessionDep) -> Response:
    await in_thread(platform_of(request).workspace_files.delete, session.principal, name)
    return redirect(request, "/ui/settings/files")


# -- usage ----------------------------------------------------------------------------------------
def usage_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, dict[str, float]]]]:
    """(the kinds, [(day, {kind: quantity})] newest day first) from ``UsageService.daily``'s rows."""
    kinds = sorted({r["kind"] for r in rows})
    days: dict[str, dict[str, float]] = {}
    for r in rows:
        days.setdefault(r["day"], {})[r["kind"]] = r["quantity"]
    return kinds, sorted(days.items(), reverse=True)


@router.get("/settings/usage", response_class=HTMLResponse)
async def usage_page(request: Request, session: SessionDep) -> HTMLResponse:
    end = utcnow()
    rows = await in_thread(lambda: platform_of(request).usage.daily(session.principal,
                                                                    start=end - timedelta(days=USAGE_DAYS), end=end))
    kinds, days = usage_table(rows)
    return render(request, session, "settings/usage.html", kinds=kinds, days=days, span=USAGE_DAYS)

"""/connections — external systems' settings, checked and read for metadata (admins manage
them; authorization and checks: services.connections)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.connections import (
    ConnectionCreate,
    ConnectionMetadata,
    ConnectionType,
    ConnectionUpdate,
    ConnectionView,
)

router = APIRouter(tags=["connections"], responses=error_responses(*AUTHENTICATED))


@router.post("/connections", status_code=201, response_model=ConnectionView, responses=error_responses(409))
async def create_connection(body: ConnectionCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """A connection (admins); secret parts are stored as encrypted secrets, never returned."""
    return await in_thread(platform.connections.create, principal, name=body.name, type=body.type,
                           config=body.config)


@router.get("/connections", response_model=Page[ConnectionView])
async def list_connections(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                           limit: int = Query(100), include_total: bool = False,
                           type: ConnectionType | None = None) -> dict:
    return await paged(platform.connections.list, principal, cursor=cursor, limit=limit,
                       include_total=include_total, type=type)


@router.get("/connections/{connection}", response_model=ConnectionView, responses=error_responses(404))
async def get_connection(connection: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.connections.get, principal, connection)


@router.patch("/connections/{connection}", response_model=ConnectionView, responses=error_responses(404, 409))
async def update_connection(connection: str, body: ConnectionUpdate, platform: PlatformDep,
                            principal: PrincipalDep) -> dict:
    return await in_thread(platform.connections.update, principal, connection, name=body.name, config=body.config)


@router.delete("/connections/{connection}", status_code=204, responses=error_responses(404))
async def delete_connection(connection: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.connections.delete, principal, connection)
    return Response(status_code=204)


@router.post("/connections/{connection}/verify", response_model=ConnectionView, responses=error_responses(404))
async def verify_connection(connection: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """A real check of the connection; its outcome (state, latency, error) is recorded as its status."""
    return await in_thread(platform.connections.verify, principal, connection)


@router.get("/connections/{connection}/metadata", response_model=ConnectionMetadata,
            responses=error_responses(404, 502))
async def connection_metadata(connection: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    """What the connected system holds: tables and columns, API operations, entity sets, objects (capped)."""
    return await in_thread(platform.connections.metadata, principal, connection)

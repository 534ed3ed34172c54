"""/users, /me and /auth/login — who uses the workspace (services.users decides who may)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from runyard.api.deps import PlatformDep, PrincipalDep, paged
from runyard.api.offload import in_thread
from runyard.api.openapi import AUTHENTICATED, error_responses
from runyard.schemas.common import Page
from runyard.schemas.tokens import TokenView
from runyard.schemas.users import Login, MeView, UserCreate, UserUpdate, UserView

router = APIRouter(tags=["users"], responses=error_responses(*AUTHENTICATED))


@router.get("/me", response_model=MeView)
async def me(platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.users.me, principal)


@router.post("/users", status_code=201, response_model=UserView, responses=error_responses(409, 413))
async def create_user(body: UserCreate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.users.create, principal, **body.model_dump())


@router.get("/users", response_model=Page[UserView])
async def list_users(platform: PlatformDep, principal: PrincipalDep, cursor: str | None = None,
                     limit: int = Query(100), include_total: bool = False) -> dict:
    return await paged(platform.users.list, principal, cursor=cursor, limit=limit, include_total=include_total)


@router.get("/users/{username}", response_model=UserView, responses=error_responses(404))
async def get_user(username: str, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.users.get, principal, username)


@router.patch("/users/{username}", response_model=UserView, responses=error_responses(404, 409))
async def update_user(username: str, body: UserUpdate, platform: PlatformDep, principal: PrincipalDep) -> dict:
    return await in_thread(platform.users.update, principal, username, **body.model_dump(exclude_unset=True))


@router.delete("/users/{username}", status_code=204, responses=error_responses(404, 409))
async def delete_user(username: str, platform: PlatformDep, principal: PrincipalDep) -> Response:
    await in_thread(platform.users.delete, principal, username)
    return Response(status_code=204)


login_router = APIRouter(tags=["users"], responses=error_responses(400, 401, 429))


@login_router.post("/auth/login", status_code=201, response_model=TokenView)
async def login(body: Login, request: Request, platform: PlatformDep) -> dict:
    """Sign in with a password: a key of the user's role that expires in 12 hours."""
    agent = request.headers.get("user-agent", "")[:120]
    return await in_thread(platform.tokens.session, platform.workspace_id, body.username, body.password,
                           label=f"sign-in {agent}".strip())

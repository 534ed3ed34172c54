"""The FastAPI application: routers under /api/v1, request ids, the error envelope."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from runyard import ui
from runyard.api import (
    cleaning,
    connections,
    datasets,
    errors,
    eval_batches,
    evaluation,
    health,
    ingest,
    ingest_proxy,
    landing,
    links,
    llm,
    mcp_tools,
    namespaces,
    openapi,
    plans,
    run_batches,
    run_files,
    run_live,
    run_search,
    runs,
    secrets,
    sets,
    templates,
    tokens,
    tools,
    triggers,
    usage,
    users,
    workflows,
    workspace_files,
)
from runyard.api.accesslog import access_log
from runyard.api.compat import datagen as compat_datagen
from runyard.api.compat import datalinks as compat_datalinks
from runyard.api.compat import datalinks_proxy as compat_datalinks_proxy
from runyard.api.compat import datamaker as compat_datamaker
from runyard.api.compat import deeporigin as compat_deeporigin
from runyard.api.fastlane import FastLane
from runyard.api.guard import BodyGuard
from runyard.api.mcp import McpEndpoint, McpMount
from runyard.api.responses import JSON
from runyard.wiring import Platform

API_PREFIX = "/api/v1"


class RequestIdMiddleware:
    """Pure ASGI (no per-request task hop): accepts or assigns ``X-Request-ID``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
                break
        request_id = request_id or f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        raw = request_id.encode()

        state = scope["state"]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", raw)]
                quota = state.get("quota")
                if quota is not None:  # set by auth when a request rate limit is configured
                    headers += [(b"x-ratelimit-limit", str(quota.limit).encode()),
                                (b"x-ratelimit-remaining", str(quota.remaining).encode()),
                                (b"x-ratelimit-reset", str(math.ceil(quota.reset_s)).encode())]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(platform: Platform, *, lifespan_hooks: list[Any] | None = None) -> Any:
    """The ASGI application: request ids around /mcp and the fast lane for run creation around FastAPI."""
    mcp_endpoint = McpEndpoint(platform, rate_limiter=lambda: api.state.rate_limiter)
    # The app's lifespan also runs the MCP session manager (last in, first out).
    api = create_fastapi(platform, lifespan_hooks=[*(lifespan_hooks or []), mcp_endpoint])
    return RequestIdMiddleware(access_log(McpMount(FastLane(BodyGuard(api)), mcp_endpoint)))


def create_fastapi(platform: Platform, *, lifespan_hooks: list[Any] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        for hook in lifespan_hooks or []:
            await hook.start(app)
        try:
            yield
        finally:
            for hook in reversed(lifespan_hooks or []):
                await hook.stop(app)

    app = FastAPI(
        title="runyard", version="0.1.0", default_response_class=JSON, lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None,
        description="Functions as versioned tools; every call a durable run.",
    )
    app.state.platform = platform
    # Counts requests against workspace plans (services.plans; None: a bare app, no counting).
    app.state.rate_limiter = getattr(platform, "plans", None)
    errors.install(app)
    # Routes are matched in order: the two health routes, then the runs router, which
    # serves the hot requests, ahead of the rest.
    app.include_router(health.router)
    app.include_router(landing.router)  # `/`: where the docs and the CLI are
    for module in (runs, run_batches, run_search, tools, tokens, secrets, templates, sets, users, namespaces,
                   datasets, ingest, usage, triggers, workflows, llm, links, cleaning, workspace_files, ingest_proxy):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(plans.router, prefix=API_PREFIX)  # /workspace/plan
    app.include_router(run_files.router, prefix=API_PREFIX)  # /runs/{id}/files
    app.include_router(run_live.router, prefix=API_PREFIX)  # /runs/{id}/connect
    app.include_router(run_live.ws_router, prefix=API_PREFIX)  # /runs/{id}/live: the signed URL's WebSocket
    app.include_router(connections.router, prefix=API_PREFIX)
    app.include_router(mcp_tools.router, prefix=API_PREFIX)
    app.include_router(evaluation.router, prefix=API_PREFIX)  # /runs/{id}/expected, comparison, feedback
    app.include_router(eval_batches.router, prefix=API_PREFIX)  # /batches
    app.include_router(users.login_router, prefix=API_PREFIX)
    app.include_router(ingest.parts_router, prefix=API_PREFIX)
    app.include_router(triggers.hooks_router)  # /hooks/{token}: authorised by the token in the path
    app.include_router(compat_datalinks.router, prefix=compat_datalinks.PREFIX)  # DataLinks' client, unchanged
    app.include_router(compat_datalinks_proxy.router, prefix=compat_datalinks_proxy.PREFIX)  # its IngestProxyAPI
    app.include_router(compat_datamaker.router, prefix=compat_datamaker.prefix_of(platform))  # DataMaker's REST paths
    app.include_router(compat_datagen.router, prefix=compat_datagen.PREFIX)  # datagen-python-sdk, unchanged
    app.include_router(compat_deeporigin.router, prefix=compat_deeporigin.PREFIX)  # deeporigin's executions, unchanged
    app.include_router(ui.router)  # /ui: the web UI, signed in by a session cookie (never /api/v1)
    openapi.install(app)  # bearer security in the schema; /docs from the package
    return app

"""``/mcp``: runyard's tools over MCP's streamable HTTP transport.

Before the MCP SDK's session manager sees a request, this layer refuses a browser
``Origin`` other than the server's own or an allowed one (403 ``origin_not_allowed``: a
page on another site, or reached by DNS rebinding, cannot drive it) and authenticates the
runyard key (401 without one, counted against the rate limit like any API request). The
key becomes the session's owner: the session manager answers 404 to a request for a
session that another key opened. Each MCP request then acts as the principal of the key
it came with, through ``services.mcp_tools``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

import runyard
from runyard.api.deps import authenticate
from runyard.api.guard import Receive, Send, send_error
from runyard.api.offload import in_thread
from runyard.mcp_server.core import BackendError, build_server
from runyard.services.access import Principal
from runyard.services.errors import DomainError, PermissionDenied
from runyard.services.mcp_tools import McpTools
from runyard.wiring import Platform

MCP_PATHS = ("/mcp", "/mcp/")
# Sessions one key may hold open at once: the node's sessions (10,000) are shared by every
# key, and one key must not take them all.
MAX_SESSIONS_PER_KEY = 32


def _refusal(exc: DomainError) -> BackendError:
    return BackendError(exc.code, exc.message, exc.status)


class LocalBackend:
    """The MCP server's view of runyard inside the server: the services, as ``principal``."""

    def __init__(self, platform: Platform, mcp_tools: McpTools, principal: Principal) -> None:
        self.platform = platform
        self.mcp_tools = mcp_tools
        self.principal = principal

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await in_thread(fn, self.principal, *args)
        except DomainError as exc:
            raise _refusal(exc) from exc

    async def list_tools(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        page = await self._call(self.mcp_tools.catalog, cursor)
        return page.items, page.next_cursor

    async def start_run(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.mcp_tools.start, tool, arguments)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._call(self.mcp_tools.run, run_id)

    async def wait_change(self, run_id: str, timeout: float) -> None:
        """Woken by the run's log growing or its end on the event hub; a lost event only
        delays until ``timeout`` (progress reports publish nothing: they are seen then)."""
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake(_topic: str, _payload: Any) -> None:
            loop.call_soon_threadsafe(woken.set)

        hub = self.platform.hub
        stops = [hub.subscribe(f"run.log:{run_id}", wake), hub.subscribe(f"run.done:{run_id}", wake)]
        try:
            await asyncio.wait_for(woken.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            for stop in stops:
                stop()

    async def read_log(self, run_id: str, offset: int) -> bytes:
        return await self._call(self.mcp_tools.log, run_id, offset)

    async def cancel_run(self, run_id: str) -> None:
        await self._call(self.mcp_tools.cancel, run_id)

    async def read_artifact(self, run_id: str, path: str) -> tuple[bytes, str | None]:
        return await self._call(self.mcp_tools.artifact, run_id, path)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def own_origins(host: str, port: int) -> frozenset[str]:
    """The server's own origins: its loopback names and the address it is bound to, on its
    port. Not the request's ``Host``: a page whose name was rebound to this server's
    address sends its own name there, and must not count as same-origin."""
    names = {*LOOPBACK_NAMES}
    if host not in ("0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host else host)
    return frozenset(f"{scheme}://{name}:{port}" for scheme in ("http", "https") for name in names)


class McpEndpoint:
    """The ASGI application of ``/mcp`` (and its session manager, run by the app's lifespan)."""

    def __init__(self, platform: Platform, *, rate_limiter: Callable[[], Any]) -> None:
        self.platform = platform
        self.rate_limiter = rate_limiter  # what the API counts requests with (read when one comes)
        self.mcp_tools = McpTools(platform.tools, platform.runs)
        settings = platform.settings
        self.allowed_origins = own_origins(settings.host, settings.port) | {
            origin.lower() for origin in settings.mcp_allowed_origins}
        self.server = build_server(self._backend_of, version=getattr(runyard, "__version__", ""))
        self.manager = StreamableHTTPSessionManager(self.server)
        self._running: Any = None

    def _backend_of(self, ctx: ServerRequestContext[Any, Any]) -> LocalBackend:
        # Each message is served as the key of the HTTP request that carried it (the
        # session's owner, which the session manager has checked).
        request = ctx.request
        principal = request.scope["state"]["principal"] if request is not None else None
        if principal is None:  # not reachable through __call__, which authenticates first
            raise BackendError("unauthenticated", "no runyard key", 401)
        return LocalBackend(self.platform, self.mcp_tools, principal)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        try:
            if origin is not None and origin.decode("latin-1").rstrip("/").lower() not in self.allowed_origins:
                raise PermissionDenied("this Origin may not call /mcp (set RUNYARD_MCP_ALLOWED_ORIGINS to allow it)",
                                       code="origin_not_allowed", details={"origin": origin.decode("latin-1")})
            principal = await authenticate(self.platform, self.rate_limiter(),
                                           headers.get(b"authorization", b"").decode("latin-1"), state)
            if self._opens_session(headers) and self._sessions_of(principal.token_id) >= MAX_SESSIONS_PER_KEY:
                raise DomainError(f"this key has {MAX_SESSIONS_PER_KEY} MCP sessions open: end one (DELETE /mcp "
                                  "with its Mcp-Session-Id) or let it expire", code="too_many_sessions",
                                  status=429, details={"limit": MAX_SESSIONS_PER_KEY})
        except DomainError as exc:
            await send_error(send, state, exc, close=False)
            return
        # The session manager binds a session to the user that opened it: the key's id.
        scope["user"] = AuthenticatedUser(AccessToken(token=principal.token_id, client_id=principal.token_id,
                                                      scopes=[]))
        await self.manager.handle_request(scope, receive, send)

    @staticmethod
    def _opens_session(headers: dict[bytes, bytes]) -> bool:
        """A request the session manager answers with a new session: no session id, in a
        protocol version with sessions (as the manager itself tells them apart)."""
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER.lower().encode())
        return MCP_SESSION_ID_HEADER.lower().encode() not in headers and (
            version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS)

    def _sessions_of(self, token_id: str) -> int:
        # The manager records each session's owner (what it checks requests against).
        owners = getattr(self.manager, "_session_owners", {})
        return sum(1 for owner in list(owners.values()) if owner.get("client_id") == token_id)

    # The app's lifespan runs the session manager (its task group holds the sessions).
    async def start(self, app: Any) -> None:
        self._running = self.manager.run()
        await self._running.__aenter__()

    async def stop(self, app: Any) -> None:
        if self._running is not None:
            await self._running.__aexit__(None, None, None)
            self._running = None


class McpMount:
    """Sends ``/mcp`` to the MCP endpoint and everything else on to the API."""

    def __init__(self, app: Any, endpoint: McpEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in MCP_PATHS:
            await self.endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)

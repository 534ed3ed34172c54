"""Stdio MCP servers (``mcp`` connections with a ``command``), run confined like a run.

A server is started on demand by the trusted side that calls it — a worker node's MCP
driver (``mcp_tool`` runs) or its answerer of ``context.mcp.call`` — never by a user's
process, and shared: one process per connection (and config) per node, its calls made over
one MCP session from an event loop of its own (``StdioServers``). It is stopped once idle
for the connection's ``idle_timeout_s`` (default 60 s) and started again by the next call; a
server that dies or garbles its answer mid-call fails that call (``mcp_server_error``) and is
dropped, so the next call starts a fresh one; a call that outlives ``call_timeout_s`` fails
``mcp_timeout``.

Confinement (``engine.sandbox.confined_command``): the command is exec'd by the sandbox
launcher after it gave up every privilege and restricted itself with Landlock — it reads the
Python runtime, the system's libraries and the dirs of the files its command names (never
the data dir, the database's dir or key files: those are refused even when named) and
writes only its own temp work dir (its cwd, ``HOME`` and ``TMPDIR``, removed when it
stops); the seccomp filter allows no socket at all unless the connection's config says
``network: true`` (then, as a run, no new ``AF_UNIX`` socket); its address space is capped
at ``memory_mb`` (default 1024). Its environment is a short fixed one plus the connection's
``env`` (values from its secret references, revealed to this process only). Verify starts the
command the same confined way, once, to list its tools (``list_tools_once``) — on the API
node, but never inside the API process itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from runyard.services.errors import ValidationFailed
from runyard.services.mcp_client import McpServerError, McpTimeout, _reason

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 1024
START_TIMEOUT_S = 30.0
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_REASON = 300


def idle_timeout(settings: dict[str, Any]) -> float:
    return float(settings.get("idle_timeout_s") or DEFAULT_IDLE_TIMEOUT_S)


def _fingerprint(settings: dict[str, Any]) -> str:
    """What a running server was started with: a changed config starts another one."""
    started_with = {k: settings.get(k) for k in ("command", "env", "network", "memory_mb")}
    return hashlib.sha256(json.dumps(started_with, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _Server:
    key: str
    workdir: str
    idle_s: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    session: Any = None
    error: str | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


class StdioServers:
    """The stdio MCP servers this node runs. Thread-safe: callers block on a loop of its own."""

    def __init__(self, protected: list[str], *, sandbox: bool = True, reap_every_s: float = 1.0) -> None:
        self.protected = list(protected)
        self.sandbox = sandbox
        self.reap_every_s = reap_every_s
        self._servers: dict[str, _Server] = {}  # touched only on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reaping: Any = None

    # -- the launcher ------------------------------------------------------------------------
    def parameters(self, settings: dict[str, Any], workdir: str) -> Any:
        """The ``StdioServerParameters`` that start ``settings``' command, confined."""
        from mcp.client.stdio import StdioServerParameters

        from runyard.engine.sandbox import confined_command

        argv = list(settings.get("command") or [])
        if not argv:
            raise ValidationFailed("the connection has no command", details={"field": "config.command"})
        program = argv[0] if os.path.isabs(argv[0]) else shutil.which(argv[0], path=BASE_PATH)
        if program is None:
            raise McpServerError(f"the MCP server's program {argv[0]!r} was not found")
        env = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
               **{str(k): str(v) for k, v in (settings.get("env") or {}).items()}}
        command = [program, *argv[1:]]
        if self.sandbox:
            # The files the command names (its script) are read in their dirs; a path inside
            # (or holding) a protected one is left out by the sandbox.
            named = sorted({os.path.dirname(os.path.realpath(a)) for a in argv if os.path.isabs(a) and os.path.isfile(a)})
            policy = {"protected": self.protected, "read": named, "write": [workdir],
                      "network": bool(settings.get("network", False)),
                      "memory_mb": int(settings.get("memory_mb") or DEFAULT_MEMORY_MB)}
            command = confined_command(policy, command)
        return StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=workdir)

    @contextlib.asynccontextmanager
    async def _session(self, settings: dict[str, Any], workdir: str) -> Any:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import stdio_client

        params = self.parameters(settings, workdir)
        with open(os.devnull, "w") as errlog:  # its stderr may quote its secrets: not logged
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), START_TIMEOUT_S)
                yield session

    def list_tools_once(self, settings: dict[str, Any]) -> list[dict[str, Any]]:
        """Start the command confined, list its tools, stop it (verify)."""
        workdir = tempfile.mkdtemp(prefix="runyard-mcp-")

        async def listing() -> list[dict[str, Any]]:
            async with self._session(settings, workdir) as session:
                return [t.model_dump(mode="json", exclude_none=True) for t in (await session.list_tools()).tools]

        try:
            return asyncio.run(asyncio.wait_for(listing(), START_TIMEOUT_S))
        except TimeoutError:
            raise McpServerError(f"the MCP server did not answer within {START_TIMEOUT_S:g} s") from None
        except (McpServerError, ValidationFailed):
            raise
        except Exception as exc:
            raise McpServerError(f"the MCP server failed to start or answer: {_reason(exc)}") from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # -- shared servers ----------------------------------------------------------------------
    def call(self, connection_id: str, settings: dict[str, Any], tool: str, arguments: dict[str, Any],
             timeout: float) -> Any:
        """``tools/call`` on the connection's server (started if none runs): the SDK's result."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._call(connection_id, settings, tool, arguments, timeout), loop)
        try:
            return future.result(timeout + START_TIMEOUT_S + 5)
        except TimeoutError:
            future.cancel()
            raise McpTimeout(f"the MCP server did not answer {tool} within {timeout:g} s",
                             details={"timeout_s": timeout}) from None

    def running(self) -> list[str]:
        """The connections whose server runs now."""
        loop = self._loop
        if loop is None:
            return []

        async def keys() -> list[str]:
            return sorted({k.split(":", 1)[0] for k, s in self._servers.items() if s.session is not None})

        return asyncio.run_coroutine_threadsafe(keys(), loop).result(5)

    def close(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return

        async def stop_all() -> None:
            if self._reaping is not None:
                self._reaping.cancel()
            for server in list(self._servers.values()):
                server.stop.set()
            tasks = [s.task for s in self._servers.values() if s.task is not None]
            if tasks:
                await asyncio.wait(tasks, timeout=10)

        try:
            asyncio.run_coroutine_threadsafe(stop_all(), loop).result(15)
        except Exception:
            log.warning("stdio MCP servers did not all stop in time")
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="runyard-mcp-stdio", daemon=True)
                self._thread.start()
                self._reaping = asyncio.run_coroutine_threadsafe(self._reaper(), loop)
                self._loop = loop
            return self._loop

    async def _call(self, connection_id: str, settings: dict[str, Any], tool: str, arguments: dict[str, Any],
                    timeout: float) -> Any:
        server = await self._server(connection_id, settings)
        server.in_flight += 1
        try:
            return await asyncio.wait_for(server.session.call_tool(tool, arguments), timeout)
        except TimeoutError:
            raise McpTimeout(f"the MCP server did not answer {tool} within {timeout:g} s",
                             details={"timeout_s": timeout}) from None
        except Exception as exc:
            # Died, closed its output or garbled it: this process is not used again.
            self._drop(server)
            raise McpServerError(f"the MCP server failed: {_reason(exc)}") from None
        finally:
            server.in_flight -= 1
            server.last_used = time.monotonic()

    async def _server(self, connection_id: str, settings: dict[str, Any]) -> _Server:
        key = f"{connection_id}:{_fingerprint(settings)}"
        for other, old in list(self._servers.items()):  # the connection's config changed
            if other.split(":", 1)[0] == connection_id and other != key:
                self._drop(old)
        server = self._servers.get(key)
        if server is None or (server.ready.is_set() and server.session is None):
            server = _Server(key=key, workdir=tempfile.mkdtemp(prefix="runyard-mcp-"), idle_s=idle_timeout(settings))
            self._servers[key] = server
            server.task = asyncio.get_running_loop().create_task(self._serve(server, settings))
        await server.ready.wait()
        if server.session is None:
            raise McpServerError(f"the MCP server failed to start: {server.error or 'it exited'}")
        server.last_used = time.monotonic()
        return server

    async def _serve(self, server: _Server, settings: dict[str, Any]) -> None:
        try:
            async with self._session(settings, server.workdir) as session:
                server.session = session
                server.ready.set()
                await server.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - whatever ended it is its error
            server.error = _reason(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            server.session = None
            server.ready.set()
            if self._servers.get(server.key) is server:
                del self._servers[server.key]
            shutil.rmtree(server.workdir, ignore_errors=True)

    def _drop(self, server: _Server) -> None:
        if self._servers.get(server.key) is server:
            del self._servers[server.key]
        server.stop.set()

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(self.reap_every_s)
            now = time.monotonic()
            for server in list(self._servers.values()):
                if server.session is not None and server.in_flight == 0 and now - server.last_used > server.idle_s:
                    log.info("stopping the idle stdio MCP server of %s", server.key.split(":", 1)[0])
                    self._drop(server)


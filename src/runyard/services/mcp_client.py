"""runyard as an MCP client (issue 18): the tools of verified ``mcp`` connections, callable
by alias ``mcp_<connection name>_<tool name>`` (DataGen's naming).

A verify stores the server's ``tools/list`` answer on the connection (``mcp_tools``);
``GET /mcp-tools`` offers those. Executing one is a run of type ``mcp_tool`` (trigger
``mcp``): inserted ``running`` with no worker — so the tool workers, which take ``queued``
runs, never see it — and taken by a worker node's MCP driver (``worker.mcp_tools``), the
trusted process that reveals the connection's secrets and makes the call; no user process
is involved (a stdio server's own process aside: services.mcp_stdio starts it confined). The run's output is the result's structured content (its text otherwise); its
error is the tool's error result (``mcp_tool_error``), a call that outlived the connection's
``call_timeout_s`` (``mcp_timeout``) or a server that failed, died mid-call or answered
something that is not MCP (``mcp_server_error``). The last two also mark the connection's
status failed with the reason; a later successful call marks it ok again.

Permission: running an MCP tool is running a tool — a member's, for listing and executing
(``RUN_MCP_TOOLS``); a key restricted to some tools or data reaches none (403 ``restricted``:
an MCP tool is none of its tools); only admins create, change or verify connections."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runyard.events import EventHub
from runyard.ids import new_id
from runyard.services import connection_checks
from runyard.services.access import Permission, Principal
from runyard.services.connections import ConnectionService
from runyard.services.errors import DomainError, NotFound, ValidationFailed
from runyard.services.outbound import OutboundPolicy, OutboundRefused
from runyard.services.runs import FAILED, RUNNING, SUCCEEDED, RunService, new_run_row
from runyard.store.db import Database
from runyard.store.tables import runs
from runyard.store.tables_connections import connections
from runyard.timeutil import rfc3339, utcnow

if TYPE_CHECKING:
    from runyard.services.mcp_stdio import StdioServers

log = logging.getLogger(__name__)

RUN_MCP_TOOLS = Permission("member", "run MCP tools", unrestricted=True)
RUN_TYPE = "mcp_tool"
START_TOPIC = "mcp_tool.start"
DEFAULT_CALL_TIMEOUT_S = 60.0
MAX_CALL_TIMEOUT_S = 3600.0
MAX_REASON = 500


class McpTimeout(DomainError):
    status = 504
    code = "mcp_timeout"


class McpServerError(DomainError):
    status = 502
    code = "mcp_server_error"


def alias_for(server: str, tool: str) -> str:
    return f"mcp_{server}_{tool}"


def call_timeout(settings: dict[str, Any]) -> float:
    try:
        value = float(settings.get("call_timeout_s") or DEFAULT_CALL_TIMEOUT_S)
    except (TypeError, ValueError):
        return DEFAULT_CALL_TIMEOUT_S
    return min(max(value, 0.1), MAX_CALL_TIMEOUT_S)


def _entry(row: Any, tool: dict[str, Any]) -> dict[str, Any]:
    return {"object": "mcp_tool", "alias": alias_for(row.name, str(tool.get("name"))), "server": row.name,
            "connection_id": row.id, "name": tool.get("name"), "description": tool.get("description") or "",
            "input_schema": tool.get("inputSchema") or tool.get("input_schema") or {"type": "object"},
            "server_status": row.status_state}


def _reason(exc: BaseException) -> str:
    """What went wrong, from the innermost cause the MCP client wrapped in groups and chains."""
    causes = connection_checks._flatten(exc)
    for cause in causes:
        if isinstance(cause, McpServerError | McpTimeout):
            return cause.message
    interesting = [c for c in causes if not isinstance(c, BaseExceptionGroup) and str(c)] or causes
    cause = interesting[-1]
    return f"{type(cause).__name__}: {str(cause)}"[:MAX_REASON]


class McpClientService:
    def __init__(self, db: Database, connections: ConnectionService, runs: RunService, hub: EventHub,
                 outbound: OutboundPolicy) -> None:
        self.db = db
        self.connections = connections
        self.runs = runs
        self.hub = hub
        self.outbound = outbound
        self.stdio: StdioServers | None = None  # a worker node's stdio MCP servers (set by its wiring)

    # -- the catalog -------------------------------------------------------------------------
    def _servers(self, workspace_id: str, names: list[str] | None = None) -> list[Any]:
        query = sa.select(connections).where(connections.c.workspace_id == workspace_id,
                                             connections.c.type == "mcp", connections.c.mcp_tools.is_not(None))
        if names is not None:
            query = query.where(connections.c.name.in_(names))
        with self.db.read() as conn:
            return list(conn.execute(query.order_by(connections.c.name)).all())

    def catalog(self, principal: Principal, *, servers: list[str] | None = None) -> list[dict[str, Any]]:
        """Every tool of the workspace's verified MCP connections, by alias."""
        RUN_MCP_TOOLS.check(principal)
        return [_entry(row, tool) for row in self._servers(principal.workspace_id, servers)
                for tool in row.mcp_tools or [] if isinstance(tool, dict)]

    def aliases(self, workspace_id: str, servers: list[str]) -> set[str]:
        """The aliases the named servers' last verify listed (for ``expected_tools``)."""
        return {alias_for(row.name, str(tool.get("name"))) for row in self._servers(workspace_id, servers)
                for tool in row.mcp_tools or [] if isinstance(tool, dict)}

    def resolve(self, workspace_id: str, alias: str, *, servers: list[str] | None = None) -> tuple[Any, str]:
        """(connection row, MCP tool name) of ``alias``; 404 ``mcp_tool_not_found`` when no
        verified server (among ``servers`` when given) lists it."""
        for row in self._servers(workspace_id, servers):
            for tool in row.mcp_tools or []:
                if isinstance(tool, dict) and alias_for(row.name, str(tool.get("name"))) == alias:
                    return row, str(tool["name"])
        raise NotFound(f"no verified MCP server lists a tool {alias!r}", code="mcp_tool_not_found",
                       details={"alias": alias})

    # -- executing -----------------------------------------------------------------------------
    def execute(self, principal: Principal, alias: str, parameters: Any) -> dict[str, Any]:
        """A run of type ``mcp_tool`` (trigger ``mcp``) for a worker node's MCP driver to take."""
        RUN_MCP_TOOLS.check(principal)
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            raise ValidationFailed("parameters must be an object", details={"field": "parameters"})
        row, tool = self.resolve(principal.workspace_id, alias)
        run_id = new_id("run")
        now = utcnow()
        run_row = new_run_row(
            id=run_id, workspace_id=principal.workspace_id, tool_id=row.id, tool_name=alias, tool_version=0,
            tool_version_id="", type=RUN_TYPE, status=RUNNING, inputs=parameters, trigger="mcp",
            triggered_by=principal.user_id, token_id=principal.token_id, user_id=principal.user_id,
            run_policy={"mcp_tool": tool}, created_at=now, queued_at=now, started_at=now)
        with self.db.write() as conn:
            conn.execute(runs.insert().values(**run_row))
        self._log(run_id, f"{rfc3339(now)} queued: {tool} on MCP server {row.name}\n")
        self.hub.publish(START_TOPIC, run_id)
        return self.runs.get(principal, run_id)

    def pending(self) -> list[str]:
        """``mcp_tool`` runs no driver has taken (their start poke was lost)."""
        with self.db.read() as conn:
            return list(conn.execute(sa.select(runs.c.id).where(
                runs.c.type == RUN_TYPE, runs.c.status == RUNNING, runs.c.worker_id.is_(None))
                .order_by(runs.c.created_at).limit(100)).scalars())

    def claim(self, run_id: str, owner: str, lease_s: float) -> bool:
        """Take a run no driver holds, with a lease its driver renews while the call runs."""
        with self.db.write() as conn:
            return bool(conn.execute(runs.update().where(
                runs.c.id == run_id, runs.c.type == RUN_TYPE, runs.c.status == RUNNING,
                runs.c.worker_id.is_(None)).values(
                    worker_id=owner, lease_expires_at=utcnow() + timedelta(seconds=lease_s))).rowcount)

    def renew(self, run_ids: list[str], owner: str, lease_s: float) -> None:
        if not run_ids:
            return
        with self.db.write() as conn:
            conn.execute(runs.update().where(
                runs.c.id.in_(run_ids), runs.c.type == RUN_TYPE, runs.c.status == RUNNING,
                runs.c.worker_id == owner).values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))

    def reap_lost(self) -> list[str]:
        """Fail (``worker_lost``) the taken runs whose lease expired: their driver's node died
        mid-call. Never called again: the call may have had its effect (an MCP tool may
        change things), so only the caller knows whether to repeat it."""
        now = utcnow()
        with self.db.read() as conn:
            expired = conn.execute(sa.select(runs.c.id, runs.c.worker_id).where(
                runs.c.type == RUN_TYPE, runs.c.status == RUNNING, runs.c.worker_id.is_not(None),
                runs.c.lease_expires_at < now)).all()
        lost = []
        for run in expired:
            error = {"type": "worker_lost", "traceback": None, "message": (
                f"the node calling the MCP tool ({run.worker_id}) stopped responding; the call was not "
                "repeated (it may have had its effect)")}
            with self.db.write() as conn:
                won = conn.execute(runs.update().where(
                    runs.c.id == run.id, runs.c.status == RUNNING, runs.c.lease_expires_at < now).values(
                        status=FAILED, error=error, finished_at=now, lease_expires_at=None)).rowcount
            if won:
                lost.append(run.id)
                self._log(run.id, f"{rfc3339(now)} failed: worker_lost: {error['message']}\n")
                self.hub.publish(f"run.done:{run.id}", FAILED)
        return lost

    def perform(self, run_id: str, scrub_value: Callable[[Any, list[str]], Any]) -> str:
        """Make the call of a claimed run and record its end; the run's status. ``scrub_value``
        (the worker's redaction, worker.logs) replaces secret values in what is stored and
        raises ``ValueError`` for a value nested too deep."""
        with self.db.read() as conn:
            run = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one()
            row = conn.execute(sa.select(connections).where(connections.c.id == run.tool_id)).one_or_none()
        tool = (run.run_policy or {}).get("mcp_tool")
        if row is None or not tool:
            return self._end(run_id, FAILED, None, {"type": "mcp_tool_not_found",
                                                    "message": "the MCP connection no longer exists"})
        found, secret_values = self.connections.settings_for_run(row.workspace_id, [row.name])
        settings = found[row.name] or {}
        started = time.monotonic()
        self._log(run_id, f"{rfc3339(utcnow())} calling {tool} on MCP server {row.name}\n")
        try:
            result = call_tool(self.outbound, settings, tool, run.inputs or {}, stdio=self.stdio,
                               connection_id=row.id)
        except DomainError as exc:
            elapsed = round((time.monotonic() - started) * 1000, 1)
            message = str(scrub_value(exc.message, secret_values))
            self._log(run_id, f"{rfc3339(utcnow())} failed after {elapsed} ms: {exc.code}: {message}\n")
            if isinstance(exc, McpTimeout | McpServerError):
                self._mark_server(row.id, ok=False, error=f"{exc.code}: {message}")
            return self._end(run_id, FAILED, None, {"type": exc.code, "message": message})
        elapsed = round((time.monotonic() - started) * 1000, 1)
        self._mark_server(row.id, ok=True, error=None)
        # What the server answers may quote the credentials it was sent: stored as ***.
        try:
            result = {**result, "output": scrub_value(result["output"], secret_values),
                      "text": str(scrub_value(result["text"], secret_values))}
        except ValueError as exc:
            return self._end(run_id, FAILED, None, {"type": "mcp_server_error",
                                                    "message": f"the MCP tool's result {exc}"})
        if result.get("isError"):
            message = result.get("text") or "the MCP tool reported an error"
            self._log(run_id, f"{rfc3339(utcnow())} the tool answered an error after {elapsed} ms\n")
            return self._end(run_id, FAILED, None, {"type": "mcp_tool_error", "message": message[:4000]})
        self._log(run_id, f"{rfc3339(utcnow())} done in {elapsed} ms\n")
        return self._end(run_id, SUCCEEDED, result["output"], None)

    def _mark_server(self, connection_id: str, *, ok: bool, error: str | None) -> None:
        """A failed call marks the connection failed with the reason; a good one after a
        failure marks it ok again."""
        with self.db.write() as conn:
            query = connections.update().where(connections.c.id == connection_id)
            if ok:
                query = query.where(connections.c.status_state == "failed")
            conn.execute(query.values(status_state="ok" if ok else "failed", status_error=error,
                                      checked_at=utcnow(), latency_ms=None))

    def _end(self, run_id: str, status: str, output: Any, error: dict[str, Any] | None) -> str:
        full = {**error, "traceback": None} if error else None
        with self.db.write() as conn:
            won = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == RUNNING).values(
                status=status, output=output, error=full, finished_at=utcnow(), lease_expires_at=None)).rowcount
            current = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one()
        if won:
            self.hub.publish(f"run.done:{run_id}", status)
        return str(current)

    def _log(self, run_id: str, line: str) -> None:
        if not self.runs.append_log(run_id, line):
            log.error("mcp tool run %s: its log could not be written", run_id)


def call_tool(policy: OutboundPolicy, settings: dict[str, Any], tool: str, arguments: dict[str, Any], *,
              stdio: StdioServers | None = None, connection_id: str | None = None) -> dict[str, Any]:
    """``tools/call`` on the server of ``settings`` (secrets revealed), through the pinned
    transport — or, for a ``command`` connection, on its confined stdio server run by
    ``stdio`` (services.mcp_stdio): ``{"output", "text", "isError"}``; ``McpTimeout`` after
    the connection's ``call_timeout_s``, ``McpServerError`` for anything else that is not a
    result."""
    timeout = call_timeout(settings)
    if settings.get("command"):
        if stdio is None or connection_id is None:
            raise McpServerError("stdio MCP servers (command) are run by worker nodes only")
        return _result(stdio.call(connection_id, settings, tool, arguments, timeout))

    async def call() -> Any:
        async with connection_checks.mcp_session(policy, settings) as session:
            return await session.call_tool(tool, arguments, read_timeout_seconds=timeout)

    async def bounded() -> Any:
        return await asyncio.wait_for(call(), timeout)

    try:
        result = asyncio.run(bounded())
    except TimeoutError:
        raise McpTimeout(f"the MCP server did not answer {tool} within {timeout:g} s",
                         details={"timeout_s": timeout}) from None
    except Exception as exc:
        causes = connection_checks._flatten(exc)
        for cause in causes:
            if isinstance(cause, OutboundRefused):
                raise McpServerError(f"refused by the outbound-host policy: {cause.message}") from None
        if any(type(c).__name__ in ("ReadTimeout", "TimeoutError") for c in causes):
            raise McpTimeout(f"the MCP server did not answer {tool} within {timeout:g} s",
                             details={"timeout_s": timeout}) from None
        raise McpServerError(f"the MCP server failed: {_reason(exc)}") from None
    return _result(result)


def _result(result: Any) -> dict[str, Any]:
    text = "\n".join(getattr(part, "text", "") for part in result.content if getattr(part, "type", "") == "text")
    output = result.structured_content if result.structured_content is not None else text
    return {"output": output, "text": text, "isError": bool(result.is_error)}

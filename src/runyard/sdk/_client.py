"""``Client`` and ``AsyncClient``: configuration plus the resource tree.

New resource groups (e.g. synthetic data) attach here with one attribute each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import httpx

from ._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AsyncAPIClient,
    RequestOptions,
    SyncAPIClient,
    Timeout,
)
from ._endpoint import Plan, Send, run_async, run_sync
from .resources import AsyncRuns, AsyncSecrets, AsyncTokens, AsyncTools, Runs, Secrets, Tokens, Tools
from .resources.connections import AsyncConnections, Connections
from .resources.datasets import AsyncDatasets, Datasets
from .resources.email_triggers import AsyncEmailTriggers, EmailTriggers
from .resources.evaluation import AsyncBatches, Batches
from .resources.files import AsyncFiles, Files
from .resources.folders import AsyncFolders, Folders
from .resources.ingest_proxy import AsyncIngestProxy, IngestProxy
from .resources.links import AsyncLinks, Links
from .resources.llm import LLM, AsyncLLM
from .resources.mcp_tools import AsyncMcpTools, McpTools
from .resources.namespaces import AsyncNamespaces, Namespaces
from .resources.plans import AsyncPlans, Plans
from .resources.schedules import AsyncSchedules, Schedules
from .resources.sets import AsyncSets, Sets
from .resources.templates import AsyncTemplates, Templates
from .resources.usage import AsyncUsage, Usage
from .resources.users import AsyncUsers, Users
from .resources.webhooks import AsyncWebhooks, Webhooks
from .resources.workflows import AsyncWorkflows, Workflows

if TYPE_CHECKING:
    from typing import Self

__all__ = ["Client", "AsyncClient"]


_HttpT = TypeVar("_HttpT", httpx.Client, httpx.AsyncClient)


class _Facade(Generic[_HttpT]):
    """What both clients share: the constructor and ``with_options`` (a client on the
    same connection pool with some settings changed). The resource attributes are
    created from the class's ``_resources`` (name → resource class)."""

    _resources: ClassVar[dict[str, type]]
    api_key: str
    base_url: str
    timeout: Timeout
    max_retries: int
    verify_ssl: bool
    _default_headers: dict[str, str]
    _http: _HttpT

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        verify_ssl: bool = True,
        default_headers: Mapping[str, str] | None = None,
        http_client: _HttpT | None = None,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]  # the transport base that follows in the MRO
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, verify_ssl=verify_ssl,
            default_headers=default_headers, http_client=http_client,
        )
        for name, resource in self._resources.items():
            setattr(self, name, resource(self))

    def with_options(self, *, timeout: Timeout | None = None, max_retries: int | None = None) -> Self:
        """A client sharing this one's connection pool with some settings changed."""
        return type(self)(
            api_key=self.api_key, base_url=self.base_url,
            timeout=self.timeout if timeout is None else timeout,
            max_retries=self.max_retries if max_retries is None else max_retries,
            verify_ssl=self.verify_ssl, default_headers=self._default_headers, http_client=self._http,
        )

    def _health(self) -> Plan[dict[str, Any]]:
        return dict((yield Send(RequestOptions("GET", "/healthz", root=True))).json())

    def _ready(self) -> Plan[dict[str, Any]]:
        return dict((yield Send(RequestOptions("GET", "/readyz", root=True, max_retries=0))).json())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class Client(_Facade[httpx.Client], SyncAPIClient):
    """Synchronous runyard client.

    >>> client = Client()  # RUNYARD_API_KEY / RUNYARD_BASE_URL from the environment
    >>> run = client.tools.run("add", {"a": 1, "b": 2})
    """

    _resources = {"tools": Tools, "runs": Runs, "connections": Connections, "secrets": Secrets, "templates": Templates, "sets": Sets,
                  "tokens": Tokens, "users": Users, "namespaces": Namespaces, "datasets": Datasets, "usage": Usage,
                  "schedules": Schedules, "webhooks": Webhooks, "email_triggers": EmailTriggers,
                  "workflows": Workflows, "folders": Folders, "llm": LLM, "links": Links, "ingest_proxy": IngestProxy, "files": Files, "plans": Plans,
                  "mcp_tools": McpTools, "batches": Batches}
    tools: Tools
    runs: Runs
    connections: Connections
    mcp_tools: McpTools
    batches: Batches
    secrets: Secrets
    templates: Templates
    sets: Sets
    tokens: Tokens
    users: Users
    namespaces: Namespaces
    datasets: Datasets
    usage: Usage
    schedules: Schedules
    webhooks: Webhooks
    email_triggers: EmailTriggers
    workflows: Workflows
    folders: Folders
    llm: LLM
    links: Links
    ingest_proxy: IngestProxy
    files: Files
    plans: Plans

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (liveness)."""
        return run_sync(self, self._health())

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: database reachable, workers alive. Raises when not ready."""
        return run_sync(self, self._ready())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Facade[httpx.AsyncClient], AsyncAPIClient):
    """Asynchronous runyard client; same resource tree, methods are coroutines (lists
    are awaitable or ``async for``-iterable)."""

    _resources = {"tools": AsyncTools, "runs": AsyncRuns, "connections": AsyncConnections, "secrets": AsyncSecrets, "templates": AsyncTemplates,
                  "sets": AsyncSets, "tokens": AsyncTokens, "users": AsyncUsers, "namespaces": AsyncNamespaces,
                  "datasets": AsyncDatasets, "usage": AsyncUsage, "schedules": AsyncSchedules, "webhooks": AsyncWebhooks,
                  "email_triggers": AsyncEmailTriggers, "workflows": AsyncWorkflows, "folders": AsyncFolders,
                  "llm": AsyncLLM, "links": AsyncLinks, "ingest_proxy": AsyncIngestProxy, "files": AsyncFiles, "plans": AsyncPlans,
                  "mcp_tools": AsyncMcpTools, "batches": AsyncBatches}
    tools: AsyncTools
    runs: AsyncRuns
    connections: AsyncConnections
    mcp_tools: AsyncMcpTools
    batches: AsyncBatches
    secrets: AsyncSecrets
    templates: AsyncTemplates
    sets: AsyncSets
    tokens: AsyncTokens
    users: AsyncUsers
    namespaces: AsyncNamespaces
    datasets: AsyncDatasets
    usage: AsyncUsage
    schedules: AsyncSchedules
    webhooks: AsyncWebhooks
    email_triggers: AsyncEmailTriggers
    workflows: AsyncWorkflows
    folders: AsyncFolders
    llm: AsyncLLM
    links: AsyncLinks
    ingest_proxy: AsyncIngestProxy
    files: AsyncFiles
    plans: AsyncPlans

    async def health(self) -> dict[str, Any]:
        """``GET /healthz`` (liveness)."""
        return await run_async(self, self._health())

    async def ready(self) -> dict[str, Any]:
        """``GET /readyz``: database reachable, workers alive. Raises when not ready."""
        return await run_async(self, self._ready())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

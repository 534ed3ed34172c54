"""``Client`` and ``AsyncClient``: configuration plus the resource tree.

New resource groups (e.g. synthetic data) attach here with one attribute each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AsyncAPIClient,
    RequestOptions,
    SyncAPIClient,
    Timeout,
)
from .resources import AsyncRuns, AsyncSecrets, AsyncTokens, AsyncTools, Runs, Secrets, Tokens, Tools
from .resources.sets import AsyncSets, Sets
from .resources.templates import AsyncTemplates, Templates

__all__ = ["Client", "AsyncClient"]


class Client(SyncAPIClient):
    """Synchronous runyard client.

    >>> client = Client()  # RUNYARD_API_KEY / RUNYARD_BASE_URL from the environment
    >>> run = client.tools.run("add", {"a": 1, "b": 2})
    """

    tools: Tools
    runs: Runs
    secrets: Secrets
    templates: Templates
    sets: Sets
    tokens: Tokens

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        verify_ssl: bool = True,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, verify_ssl=verify_ssl,
            default_headers=default_headers, http_client=http_client,
        )
        self.tools = Tools(self)
        self.runs = Runs(self)
        self.secrets = Secrets(self)
        self.templates = Templates(self)
        self.sets = Sets(self)
        self.tokens = Tokens(self)

    def with_options(self, *, timeout: Timeout | None = None, max_retries: int | None = None) -> Client:
        """A client sharing this one's connection pool with some settings changed."""
        return Client(
            api_key=self.api_key, base_url=self.base_url,
            timeout=self.timeout if timeout is None else timeout,
            max_retries=self.max_retries if max_retries is None else max_retries,
            verify_ssl=self.verify_ssl, default_headers=self._default_headers, http_client=self._http,
        )

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (liveness)."""
        return dict(self.request(RequestOptions("GET", "/healthz", root=True)).json())

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: database reachable, workers alive. Raises when not ready."""
        return dict(self.request(RequestOptions("GET", "/readyz", root=True, max_retries=0)).json())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"


class AsyncClient(AsyncAPIClient):
    """Asynchronous runyard client; same resource tree, methods are coroutines (lists
    are awaitable or ``async for``-iterable)."""

    tools: AsyncTools
    runs: AsyncRuns
    secrets: AsyncSecrets
    templates: AsyncTemplates
    sets: AsyncSets
    tokens: AsyncTokens

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        verify_ssl: bool = True,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, verify_ssl=verify_ssl,
            default_headers=default_headers, http_client=http_client,
        )
        self.tools = AsyncTools(self)
        self.runs = AsyncRuns(self)
        self.secrets = AsyncSecrets(self)
        self.templates = AsyncTemplates(self)
        self.sets = AsyncSets(self)
        self.tokens = AsyncTokens(self)

    def with_options(self, *, timeout: Timeout | None = None, max_retries: int | None = None) -> AsyncClient:
        return AsyncClient(
            api_key=self.api_key, base_url=self.base_url,
            timeout=self.timeout if timeout is None else timeout,
            max_retries=self.max_retries if max_retries is None else max_retries,
            verify_ssl=self.verify_ssl, default_headers=self._default_headers, http_client=self._http,
        )

    async def health(self) -> dict[str, Any]:
        return dict((await self.request(RequestOptions("GET", "/healthz", root=True))).json())

    async def ready(self) -> dict[str, Any]:
        return dict((await self.request(RequestOptions("GET", "/readyz", root=True, max_retries=0))).json())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r})"

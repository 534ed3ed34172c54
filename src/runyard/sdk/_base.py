"""HTTP transport shared by the sync and async clients: configuration, retries with
exponential backoff and jitter, ``Retry-After``, idempotency keys and error mapping.

The retry *decisions* live in :class:`BaseClient` as pure functions of a response or
exception, so the sync and async loops differ only in how they sleep and send.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from .errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    make_status_error,
)

__all__ = ["BaseClient", "SyncAPIClient", "AsyncAPIClient", "RequestOptions", "FilePart", "parse_retry_after"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
#: A server asking us to wait longer than this is capped, so a client never hangs for
#: minutes on one header.
MAX_RETRY_AFTER = 60.0
#: Extra client-side read time on top of a server-side long-poll, so the server answers
#: before our socket gives up.
LONG_POLL_MARGIN = 15.0

Timeout = float | httpx.Timeout | None


@functools.cache
def _sdk_version() -> str:  # cached: else a package-metadata lookup on every request
    try:
        from importlib.metadata import version

        return version("runyard")
    except Exception:
        return "0"


@dataclass
class FilePart:
    """One multipart file. ``source`` is a path (opened fresh for every attempt, so a
    retry re-sends the whole file), in-memory bytes, or a binary file object (sent from
    its start: httpx rewinds it for each attempt)."""

    field: str
    filename: str
    source: Path | bytes | IO[bytes]
    content_type: str = "application/octet-stream"


@dataclass
class RequestOptions:
    method: str
    path: str
    params: Mapping[str, Any] | list[tuple[str, Any]] | None = None
    json: Any = None
    data: Mapping[str, Any] | None = None
    files: list[FilePart] = field(default_factory=list)
    #: A raw body (e.g. YAML text), sent as it is; give its ``Content-Type`` in ``headers``.
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    timeout: Timeout = None
    #: Send an ``Idempotency-Key`` (reused across retries). Defaults to True for POST.
    idempotency_key: str | None = None
    #: Path is relative to the server root instead of ``/api/v1`` (health endpoints).
    root: bool = False
    max_retries: int | None = None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP date); also accepts
    the non-standard ``retry-after-ms``."""
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _clean_params(
    params: Mapping[str, Any] | list[tuple[str, Any]] | None,
) -> list[tuple[str, str | int | float | bool | None]]:
    """Drop ``None``s, expand lists into repeated keys, render bools the way the server
    parses them."""
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in items:
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, bool):
                out.append((key, "true" if v else "false"))
            elif hasattr(v, "isoformat"):
                out.append((key, v.isoformat()))
            else:
                out.append((key, str(v)))
    return out


class BaseClient:
    api_key: str
    base_url: str
    timeout: Timeout
    max_retries: int
    verify_ssl: bool

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: Timeout,
        max_retries: int,
        verify_ssl: bool,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        # Constructor arguments always win over the environment.
        key = api_key if api_key is not None else os.environ.get("RUNYARD_API_KEY")
        if not key:
            raise ConfigurationError(
                "No API key: pass api_key=... to the client or set RUNYARD_API_KEY "
                "(the server prints the admin key on first start and stores it in <data-dir>/admin-key)."
            )
        self.api_key = key
        url = base_url if base_url is not None else os.environ.get("RUNYARD_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = self._normalise_base_url(url)
        self.timeout = timeout
        if max_retries < 0:
            raise ConfigurationError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.verify_ssl = verify_ssl
        self._default_headers = dict(default_headers or {})

    @staticmethod
    def _normalise_base_url(url: str) -> str:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://, got {url!r}")
        # Accept both "http://host:8000" and "http://host:8000/api/v1".
        if not url.endswith(API_PREFIX):
            url += API_PREFIX
        return url

    @property
    def server_url(self) -> str:
        """The server root (without ``/api/v1``)."""
        return self.base_url[: -len(API_PREFIX)]

    # ---- request building -------------------------------------------------------

    def _headers(self, opts: RequestOptions, idem_key: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": f"runyard-python/{_sdk_version()}",
            "Accept": "application/json",
            **self._default_headers,
        }
        if idem_key:
            headers["Idempotency-Key"] = idem_key
        if opts.headers:
            headers.update(opts.headers)
        return headers

    def _url(self, opts: RequestOptions) -> str:
        prefix = self.server_url if opts.root else self.base_url
        path = opts.path if opts.path.startswith("/") else "/" + opts.path
        return prefix + path

    def _idempotency_key(self, opts: RequestOptions) -> str | None:
        # One key per logical call, generated before the first attempt, so every retry of
        # a create carries the same key and the server dedupes it.
        if opts.idempotency_key is not None:
            return opts.idempotency_key
        if opts.method.upper() == "POST":
            return f"runyard-py-{uuid.uuid4().hex}"
        return None

    def _timeout(self, opts: RequestOptions) -> httpx.Timeout:
        t = opts.timeout if opts.timeout is not None else self.timeout
        if isinstance(t, httpx.Timeout):
            return t
        return httpx.Timeout(t, connect=min(t, 10.0) if t is not None else 10.0)

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, opts: RequestOptions, idem_key: str | None,
        stack: contextlib.ExitStack,
    ) -> httpx.Request:
        files: list[tuple[str, tuple[str, IO[bytes] | bytes, str]]] | None = None
        if opts.files:
            files = []
            for part in opts.files:
                content: IO[bytes] | bytes
                if isinstance(part.source, Path):
                    content = stack.enter_context(part.source.open("rb"))
                else:
                    content = part.source
                files.append((part.field, (part.filename, content, part.content_type)))
        return http.build_request(
            opts.method,
            self._url(opts),
            params=_clean_params(opts.params),
            content=opts.content,
            json=opts.json if not files and opts.data is None and opts.content is None else None,
            data=dict(opts.data) if opts.data is not None else None,
            files=files,
            headers=self._headers(opts, idem_key),
            timeout=self._timeout(opts),
        )

    # ---- retry policy -----------------------------------------------------------

    @staticmethod
    def _should_retry(response: httpx.Response) -> bool:
        status = response.status_code
        if status in (408, 429) or status >= 500:
            return True
        if status == 409:
            # The server marks transient conflicts (e.g. a lock) as retryable.
            try:
                body = response.json()
            except Exception:
                return False
            err = body.get("error") if isinstance(body, dict) else None
            details = err.get("details") if isinstance(err, dict) else None
            return isinstance(details, dict) and details.get("retryable") is True
        return False

    @staticmethod
    def _retry_delay(attempt: int, response: httpx.Response | None) -> float:
        """Seconds before retry number ``attempt`` (0-based)."""
        if response is not None:
            after = parse_retry_after(response.headers)
            if after is not None:
                return min(after, MAX_RETRY_AFTER)
        base = min(INITIAL_RETRY_DELAY * (2.0**attempt), MAX_RETRY_DELAY)
        # Jitter spreads out clients that failed together so they do not retry together.
        return base * (1 - 0.25 * random.random())

    def _max_retries(self, opts: RequestOptions) -> int:
        return self.max_retries if opts.max_retries is None else opts.max_retries


def _transport_error(exc: httpx.TransportError, request: httpx.Request | None) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"Request timed out: {exc}", request=request)
    return APIConnectionError(f"Connection error: {exc!r}", request=request)


class SyncAPIClient(BaseClient):
    _http: httpx.Client

    def __init__(self, *, http_client: httpx.Client | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(verify=self.verify_ssl, follow_redirects=True)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _send(self, opts: RequestOptions, *, stream: bool) -> httpx.Response:
        """Send with retries; returns a successful response (streaming if ``stream``)."""
        idem_key = self._idempotency_key(opts)
        retries = self._max_retries(opts)
        attempt = 0
        while True:
            request: httpx.Request | None = None
            with contextlib.ExitStack() as stack:
                try:
                    request = self._build_request(self._http, opts, idem_key, stack)
                    response = self._http.send(request, stream=stream)
                except httpx.TransportError as exc:
                    if attempt < retries:
                        time.sleep(self._retry_delay(attempt, None))
                        attempt += 1
                        continue
                    raise _transport_error(exc, request) from exc
            if response.is_success:
                return response
            if stream:
                response.read()
                response.close()
            if attempt < retries and self._should_retry(response):
                time.sleep(self._retry_delay(attempt, response))
                attempt += 1
                continue
            raise make_status_error(response)

    def request(self, opts: RequestOptions) -> httpx.Response:
        return self._send(opts, stream=False)

    def send_streaming(self, opts: RequestOptions) -> httpx.Response:
        """A successful response whose body is still to be read; the caller closes it."""
        return self._send(opts, stream=True)

    @contextlib.contextmanager
    def stream(self, opts: RequestOptions) -> Iterator[httpx.Response]:
        response = self._send(opts, stream=True)
        try:
            yield response
        finally:
            response.close()


class AsyncAPIClient(BaseClient):
    _http: httpx.AsyncClient

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(verify=self.verify_ssl, follow_redirects=True)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _send(self, opts: RequestOptions, *, stream: bool) -> httpx.Response:
        idem_key = self._idempotency_key(opts)
        retries = self._max_retries(opts)
        attempt = 0
        while True:
            request: httpx.Request | None = None
            # Files are opened synchronously: they are local and the read is streamed by httpx.
            with contextlib.ExitStack() as stack:
                try:
                    request = self._build_request(self._http, opts, idem_key, stack)
                    response = await self._http.send(request, stream=stream)
                except httpx.TransportError as exc:
                    if attempt < retries:
                        await asyncio.sleep(self._retry_delay(attempt, None))
                        attempt += 1
                        continue
                    raise _transport_error(exc, request) from exc
            if response.is_success:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            if attempt < retries and self._should_retry(response):
                await asyncio.sleep(self._retry_delay(attempt, response))
                attempt += 1
                continue
            raise make_status_error(response)

    async def request(self, opts: RequestOptions) -> httpx.Response:
        return await self._send(opts, stream=False)

    async def send_streaming(self, opts: RequestOptions) -> httpx.Response:
        """A successful response whose body is still to be read; the caller closes it."""
        return await self._send(opts, stream=True)

    @contextlib.asynccontextmanager
    async def stream(self, opts: RequestOptions) -> AsyncIterator[httpx.Response]:
        response = await self._send(opts, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

"""The runyard Python SDK: a light client (httpx + pydantic) with nothing from the server side."""

from ._base import DEFAULT_BASE_URL
from ._client import AsyncClient, Client
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunFailedError,
    RunyardError,
    ServerError,
    ValidationError,
    WaitTimeoutError,
)
from .models import (
    TERMINAL_STATUSES,
    Artifact,
    BatchItemError,
    Run,
    RunBatchItem,
    RunError,
    RunUsage,
    Secret,
    Token,
    Tool,
    ToolVersion,
)
from .pagination import AsyncCursorPage, AsyncPaginator, SyncCursorPage
from .streaming import AsyncLogStream, LogStream

__all__ = [
    "Client", "AsyncClient", "DEFAULT_BASE_URL",
    "RunyardError", "ConfigurationError", "APIError", "APIStatusError", "ValidationError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "RateLimitError", "ServerError",
    "APIConnectionError", "APITimeoutError", "RunFailedError", "WaitTimeoutError",
    "Run", "RunBatchItem", "BatchItemError", "RunError", "RunUsage", "Tool", "ToolVersion", "Token", "Secret", "Artifact", "TERMINAL_STATUSES",
    "SyncCursorPage", "AsyncCursorPage", "AsyncPaginator", "LogStream", "AsyncLogStream",
]

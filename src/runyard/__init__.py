"""runyard: Python functions become versioned tools with an HTTP API and durable runs.

The client names below are loaded lazily (PEP 562): ``import runyard`` stays cheap for
code that only needs a submodule — tool processes started by the engine import
``runyard.context`` and should not pay for httpx and pydantic.
"""

from __future__ import annotations

# Not `from typing import ...`: run processes import this package (for runyard.context)
# and the lean fork server keeps typing out of their interpreter.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient",
    "RunyardError", "ConfigurationError", "APIError", "APIStatusError", "ValidationError",
    "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ConflictError", "RateLimitError",
    "ServerError", "APIConnectionError", "APITimeoutError", "RunFailedError", "WaitTimeoutError",
    "Run", "RunBatchItem", "Tool", "ToolVersion", "Token", "Secret", "Artifact", "TERMINAL_STATUSES",
]
_SDK_EXPORTS = frozenset(__all__)

if TYPE_CHECKING:
    from .sdk import (
        TERMINAL_STATUSES,
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        Artifact,
        AsyncClient,
        AuthenticationError,
        Client,
        ConfigurationError,
        ConflictError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        Run,
        RunBatchItem,
        RunFailedError,
        RunyardError,
        Secret,
        ServerError,
        Token,
        Tool,
        ToolVersion,
        ValidationError,
        WaitTimeoutError,
    )


def __getattr__(name: str) -> Any:
    if name in _SDK_EXPORTS:
        from . import sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'runyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SDK_EXPORTS)

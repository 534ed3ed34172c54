"""The access log: one line per request — method, path, status, duration, request id.

``RUNYARD_ACCESS_LOG``: ``-`` (the default) logs to the server's log (stderr) through the
``runyard.access`` logger at INFO; a path appends to that file instead; ``off`` disables
it. A pure ASGI middleware inside the request-id one, so the line carries the id the
response carried.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("runyard.access")

OFF = ("off", "0", "false", "no", "none")
# Query parameters that grant access by themselves (a signed upload URL's): never logged.
SECRET_PARAMS = ("signature", "key", "token")


def redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        name, sep, _ = item.partition("=")
        parts.append(f"{name}=REDACTED" if sep and name.lower() in SECRET_PARAMS else item)
    return "&".join(parts)


class AccessLog:
    def __init__(self, app: Any, log: logging.Logger = logger) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_and_note(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # Logged when the response is over (a stream: when its last byte left, or
            # when its client went away — status 0 if nothing was sent).
            path = scope.get("path", "")
            query = scope.get("query_string", b"")
            self.log.info("%s %s%s %d %.1fms %s", scope.get("method", "-"), path,
                          "?" + redact_query(query.decode("latin-1")) if query else "", status,
                          (time.perf_counter() - start) * 1000, scope.get("state", {}).get("request_id", "-"))


def access_log(app: Any, setting: str | None = None) -> Any:
    """Wrap ``app`` as ``RUNYARD_ACCESS_LOG`` (or ``setting``) says."""
    value = (setting if setting is not None else os.environ.get("RUNYARD_ACCESS_LOG", "-")).strip()
    if value.lower() in OFF:
        return app
    log = logger
    if value not in ("", "-"):
        log = logging.getLogger(f"runyard.access.{abs(hash(value))}")
        if not log.handlers:
            handler = logging.FileHandler(value)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO)
    return AccessLog(app, log)

"""Deploying tools and starting runs over HTTP, error codes, waiting for a run's status."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def deploy(api: httpx.Client, name: str, code: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/tools", json={"name": name, "code": textwrap.dedent(code), **fields})
    assert response.status_code in (200, 201), response.text
    return response.json()


def run(api: httpx.Client, tool: str, inputs: dict[str, Any] | None = None, wait: float = 30,
        **fields: Any) -> dict[str, Any]:
    response = api.post("/runs", params={"wait": wait}, json={"tool": tool, "inputs": inputs or {}, **fields})
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def wait_status(api: httpx.Client, run_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(f"/runs/{run_id}").json()
        if run["status"] in statuses or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]["code"]

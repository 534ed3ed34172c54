"""Fixtures for the web UI tests: keys of each role, and (for the browser tests) Debian's
chromium driven by Playwright — never a downloaded browser."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import Server

CHROMIUM = os.environ.get("RUNYARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def artifacts_dir() -> Path:
    """Where screenshots go: $RUNYARD_TEST_ARTIFACTS/ui, else tests/ui/.artifacts (git-ignored)."""
    base = os.environ.get("RUNYARD_TEST_ARTIFACTS")
    path = Path(base) / "ui" if base else Path(__file__).resolve().parent / ".artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def make_key(api: httpx.Client, role: str, **fields: Any) -> str:
    response = api.post("/tokens", json={"name": f"ui-{role}-{uuid.uuid4().hex[:6]}", "role": role, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped on purpose: Playwright's sync API keeps an event loop running on this
    thread while it is open, and every later test that calls asyncio.run() would fail."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (scripts/test.sh installs it with apt-get)")
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()

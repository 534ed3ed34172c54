"""``client.workflows.*``: list, get, versions, and ``executions.run_and_wait`` — a
workflow started, then followed on runyard's runs API until it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ._transport import Transport, seg
from .errors import EigenpalTimeoutError, EigenpalValidationError
from .runs import MAX_WAIT_S, start_run

__all__ = ["Workflows", "Executions", "TERMINAL_STATUSES"]

#: runyard's terminal run statuses: a run in one of them has ``finished``.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
MAX_PAGE = 100  # Eigenpal's page size limit on workflow lists


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise EigenpalValidationError(f"limit must be 1–{MAX_PAGE} and offset at least 0", status=400,
                                      code="validation_error")


def _offset_page(fetch: Callable[[str | None, int], dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    """Eigenpal's ``limit``/``offset`` page over runyard's cursor pages."""
    _check_page(limit, offset)
    cursor: str | None = None
    skipped = 0
    while skipped < offset:
        page = fetch(cursor, min(1000, offset - skipped))
        skipped += len(page.get("items", []))
        cursor = page.get("next_cursor")
        if not cursor:
            return {"items": [], "next_cursor": None, "total": page.get("total"), "limit": limit, "offset": offset}
    page = fetch(cursor, limit)
    return {**page, "limit": limit, "offset": offset}


class Executions:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def run_and_wait(self, name: str, input: Mapping[str, Any] | None = None, *, version: str | int | None = None,
                     timeout_seconds: float = 3600.0, poll_interval_seconds: float = 1.0) -> dict[str, Any]:
        """Run the workflow ``name`` (or id) with ``input`` — ``pathlib.Path`` values (and bytes
        or open binary files) are uploaded as files, no base64 — and wait until it ends. The
        answer is the run with ``finished`` (whether it ended within ``timeout_seconds``) and
        ``output``; past the timeout, :class:`EigenpalTimeoutError`."""
        deadline = time.monotonic() + timeout_seconds
        payload: dict[str, Any] = {"workflow": name}
        if version is not None:
            payload["version"] = version
        run = start_run(self._t, payload, input, min(MAX_WAIT_S, max(0.0, timeout_seconds)))
        while run.get("status") not in TERMINAL_STATUSES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EigenpalTimeoutError(f"workflow run {run.get('id')} did not end within {timeout_seconds:g} s "
                                           f"(status {run.get('status')})", code="timeout")
            run = self._t.json("GET", f"/runs/{seg(run['id'])}/wait",
                               params={"timeout": min(remaining, MAX_WAIT_S)}, timeout=min(remaining, MAX_WAIT_S) + 30)
            if run.get("status") not in TERMINAL_STATUSES and run.get("status") == "waiting_for_input":
                time.sleep(poll_interval_seconds)  # a person must answer: poll gently
        return {**run, "finished": True}


class Workflows:
    """``client.workflows``: ``list``, ``get``, ``versions`` and ``executions``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.executions = Executions(transport)

    def list(self, *, search: str | None = None, name: str | None = None, kind: str | None = None,
             folder_id: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Workflows, newest first: ``search`` (substring of the name), ``name`` (exact),
        ``kind`` (``workflow``/``block``), ``folder_id`` (``"null"``: unfiled only)."""
        def fetch(cursor: str | None, size: int) -> dict[str, Any]:
            return self._t.json("GET", "/workflows", params={
                "search": search, "name": name, "kind": kind, "cursor": cursor, "limit": size, "include_total": True,
                "folder_id": None if folder_id == "null" else folder_id})

        if folder_id != "null":
            return _offset_page(fetch, limit, offset)
        # Unfiled only: runyard filters by a folder, not by its absence, so the pages are
        # walked and the unfiled kept (a workspace's workflows are few).
        _check_page(limit, offset)
        unfiled: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = fetch(cursor, 1000)
            unfiled += [w for w in page.get("items", []) if w.get("folder_id") is None]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        items = unfiled[offset:offset + limit]
        more = offset + limit < len(unfiled)
        return {"items": items, "next_cursor": None, "total": len(unfiled), "has_more": more, "limit": limit,
                "offset": offset}

    def get(self, id: str) -> dict[str, Any]:
        """One workflow (by id or name) with its current definition."""
        return self._t.json("GET", f"/workflows/{seg(id)}")

    def versions(self, id: str, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """The workflow's published versions."""
        def fetch(cursor: str | None, size: int) -> dict[str, Any]:
            return self._t.json("GET", f"/workflows/{seg(id)}/versions", params={"cursor": cursor, "limit": size})

        return _offset_page(fetch, limit, offset)

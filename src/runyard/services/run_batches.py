"""Many runs at once: a batch of creations, each item judged alone, and reading a set of
runs by id.

A batch item is created exactly as ``RunService.create`` creates one run — the same
validation, tool visibility, secrets, idempotency and role checks — so a batch answers
each item what ``POST /runs`` would have answered it. Items are created by a few threads
at once so that their inserts share group commits (SQLite) or overlap their round trips
(PostgreSQL); the answers keep the items' order.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.errors import DomainError, NotFound, PayloadTooLarge, ValidationFailed
from runyard.services.run_visibility import run_filter
from runyard.services.runs import CREATE_RUNS, TERMINAL_STATUSES, RunService, run_view
from runyard.store.tables import runs

#: Runs one batch may create, and run ids one wait may name.
MAX_BATCH = 1000
#: What a batch item may hold: the body of ``POST /runs`` and its own idempotency key.
ITEM_FIELDS = frozenset({"tool", "version", "inputs", "tags", "requires_confirmation", "idempotency_key",
                         "timeout_s"})
#: Threads creating one batch's items (their inserts meet in the same commits).
CREATORS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _creators() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=CREATORS, thread_name_prefix="run-batch")
        return _pool


def check_size(count: int, what: str) -> None:
    """413 ``batch_too_large`` beyond :data:`MAX_BATCH`."""
    if count > MAX_BATCH:
        raise PayloadTooLarge(f"at most {MAX_BATCH} {what} per request, got {count}; send them in several requests",
                              code="batch_too_large", details={"max": MAX_BATCH, "count": count})


def error_item(index: int, exc: DomainError) -> dict[str, Any]:
    return {"index": index, "status": exc.status,
            "error": {"code": exc.code, "message": exc.message, "details": exc.details}}


def create_many(service: RunService, principal: Principal, items: Any, *, idempotency_key: str | None = None,
                trigger: str = "api") -> list[dict[str, Any]]:
    """Create a run for each item; one answer per item, in order: ``{"index", "status":
    201|200, "run"}`` or ``{"index", "status": 4xx, "error": {"code", "message",
    "details"}}``. Nothing an item holds fails another item or the batch.

    The batch as a whole needs a key that may create runs (the role is the key's, not an
    item's) and at most :data:`MAX_BATCH` items. An item without its own
    ``idempotency_key`` gets ``<idempotency_key>:<index>`` when the request has one, so
    a retried batch creates nothing twice.
    """
    CREATE_RUNS.check(principal)
    if not isinstance(items, list):
        raise ValidationFailed("runs must be a list of run objects", details={"field": "runs"})
    check_size(len(items), "runs")

    def create(index: int) -> dict[str, Any]:
        try:
            item = items[index]
            if not isinstance(item, dict):
                raise ValidationFailed("a run must be an object", details={"field": f"runs[{index}]"})
            unknown = sorted(set(item) - ITEM_FIELDS)
            if unknown:
                raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}", details={"fields": unknown})
            if "tool" not in item:
                raise ValidationFailed("tool is required", details={"field": "tool"})
            key = item.get("idempotency_key")
            if key is not None and not isinstance(key, str):
                raise ValidationFailed("idempotency_key must be a string", code="invalid_idempotency_key",
                                       details={"field": "idempotency_key"})
            if key is None and idempotency_key is not None:
                key = f"{idempotency_key}:{index}"
            confirm = item.get("requires_confirmation", False)
            if not isinstance(confirm, bool):
                raise ValidationFailed("requires_confirmation must be a boolean",
                                       details={"field": "requires_confirmation"})
            run, created = service.create(principal, tool=item["tool"], version=item.get("version"),
                                          inputs=item.get("inputs"), tags=item.get("tags"),
                                          requires_confirmation=confirm, idempotency_key=key, trigger=trigger,
                                          timeout_s=item.get("timeout_s"))
        except DomainError as exc:
            return error_item(index, exc)
        return {"index": index, "status": 201 if created else 200, "run": run}

    if len(items) <= 1:
        return [create(i) for i in range(len(items))]
    return list(_creators().map(create, range(len(items))))


def check_ids(ids: Any) -> list[str]:
    """The distinct run ids of a wait request, in order (400 unless a list of strings)."""
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise ValidationFailed("ids must be a list of run ids", details={"field": "ids"})
    check_size(len(ids), "run ids")
    return list(dict.fromkeys(ids))


def visible_runs(service: RunService, principal: Principal, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The runs ``ids`` as ``principal`` sees them (one query), by id. A run that does
    not exist or is hidden from the key (a tool outside its restrictions) is 404
    ``run_not_found``, as ``GET /runs/{id}`` answers; ``details.run_ids`` names them."""
    with service.db.read() as conn:
        rows = conn.execute(sa.select(runs).where(runs.c.workspace_id == principal.workspace_id,
                                                  runs.c.id.in_(ids))).all()
        sees = run_filter(conn, principal)
        found = {row.id: run_view(row) for row in rows if sees(row)}
    missing = [rid for rid in ids if rid not in found]
    if missing:
        shown = ", ".join(repr(rid) for rid in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise NotFound(f"run(s) not found: {shown}", code="run_not_found",
                       details={"run_id": missing[0], "run_ids": missing})
    return found


def is_terminal(run: dict[str, Any]) -> bool:
    return run["status"] in TERMINAL_STATUSES

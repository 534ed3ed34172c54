"""Workspace plans (issue 18): requests per minute and generated rows per hour, counted
across every API node by the configured limiter (services/ratelimit.py), and the bytes the
workspace may keep (services/storage.py; unset: the node's ``RUNYARD_STORAGE_QUOTA_BYTES``).

The **operator** — whoever runs the deployment — sets plans. In runyard's role model
that is the bootstrap ``admin`` user (the one whose key is ``RUNYARD_ADMIN_KEY`` or the
data directory's ``admin-key``) through an unrestricted key: workspace admins that user
made manage users, keys and data, but cannot raise their own workspace's limits. Any key
of the workspace reads its plan (the X-RateLimit-* headers tell it as much anyway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Permission, Principal
from runyard.services.errors import PermissionDenied, RateLimited, ValidationFailed
from runyard.services.ratelimit import Limiter, Quota, refuse
from runyard.store.db import Database
from runyard.store.tables_plans import workspace_plans
from runyard.timeutil import rfc3339, utcnow

# The reference's table; enterprise is "per contract": unlimited unless the operator
# gives numbers, as custom must.
PLANS: dict[str, tuple[int | None, int | None]] = {
    "free": (60, 10_000),
    "pro": (600, 1_000_000),
    "enterprise": (None, None),
    "custom": (None, None),
    "unlimited": (None, None),
}
WITH_NUMBERS = ("enterprise", "custom")  # the plans whose limits the operator gives
NUMBERS = ("requests_per_minute", "rows_per_hour", "storage_bytes")
CACHE_S = 5.0  # another node's plan change is seen within this long
REQUEST_WINDOW_S = 60
ROWS_WINDOW_S = 3600
MAX_LIMIT = 10**12
READ_PLAN = Permission("viewer", "read the workspace's plan")
SET_PLAN = Permission("admin", "set the workspace's plan", unrestricted=True)


@dataclass(frozen=True)
class Limits:
    plan: str
    requests_per_minute: int | None  # None: unlimited
    rows_per_hour: int | None
    source: str  # "plan" (set by the operator) or "default" (the node's configuration)
    updated_at: str | None = None
    updated_by: str | None = None
    storage_bytes: int | None = None  # None: the node's storage quota

    def view(self, backend: str) -> dict[str, Any]:
        return {"object": "plan", "plan": self.plan, "requests_per_minute": self.requests_per_minute,
                "rows_per_hour": self.rows_per_hour, "storage_bytes": self.storage_bytes, "source": self.source,
                "counted_by": backend, "updated_at": self.updated_at, "updated_by": self.updated_by}


def _limit(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed(f"{field} must be a whole number from 1 to {MAX_LIMIT:,} (or null: unlimited)",
                               details={"field": field})
    return value


class PlanService:
    """Reads and sets plans; counts requests and generated rows against them."""

    def __init__(self, db: Database, limiter: Limiter, *, operator_user_id: Callable[[], str | None],
                 default_requests_per_minute: int = 0, default_rows_per_hour: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.limiter = limiter
        self.operator_user_id = operator_user_id
        self.default = Limits("unlimited" if not (default_requests_per_minute or default_rows_per_hour) else "custom",
                              default_requests_per_minute or None, default_rows_per_hour or None, "default")
        self.clock = clock
        self._cache: dict[str, tuple[float, Limits]] = {}
        self._lock = threading.Lock()

    # -- the operator's routes ------------------------------------------------------------

    def get(self, principal: Principal) -> dict[str, Any]:
        READ_PLAN.check(principal)
        return self.limits(principal.workspace_id, fresh=True).view(self.limiter.backend)

    def set(self, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        SET_PLAN.check(principal)
        if not self.is_operator(principal):
            raise PermissionDenied("only the operator (the bootstrap admin user) can set the workspace's plan",
                                   code="operator_only")
        unknown = sorted(set(body) - {"plan", *NUMBERS})
        if unknown:
            raise ValidationFailed(f"unknown field {unknown[0]!r}", details={"field": unknown[0]})
        plan = body.get("plan")
        if plan not in PLANS:
            raise ValidationFailed(f"plan must be one of {', '.join(PLANS)}", details={"field": "plan"})
        requests, rows = PLANS[plan]
        given = {k: body[k] for k in NUMBERS if k in body}
        storage = _limit(given.pop("storage_bytes", None), "storage_bytes")  # any plan may carry its own
        if plan in WITH_NUMBERS:
            requests = _limit(given.get("requests_per_minute"), "requests_per_minute")
            rows = _limit(given.get("rows_per_hour"), "rows_per_hour")
            if plan == "custom" and requests is None and rows is None and storage is None:
                raise ValidationFailed("a custom plan needs requests_per_minute, rows_per_hour or storage_bytes",
                                       details={"field": "requests_per_minute"})
        elif given:
            field = next(iter(given))
            raise ValidationFailed(f"the {plan} plan has fixed limits; give {field} with a custom or "
                                   "enterprise plan", details={"field": field})
        values = {"plan": plan, "requests_per_minute": requests, "rows_per_hour": rows, "storage_bytes": storage,
                  "updated_by": principal.user_id, "updated_at": utcnow()}
        for attempt in (1, 2):  # a first plan set on two nodes at once: the second updates
            try:
                with self.db.write() as conn:
                    done = conn.execute(workspace_plans.update().where(
                        workspace_plans.c.workspace_id == principal.workspace_id).values(**values))
                    if not done.rowcount:
                        conn.execute(workspace_plans.insert().values(workspace_id=principal.workspace_id, **values))
                break
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        with self._lock:
            self._cache.pop(principal.workspace_id, None)
        return self.limits(principal.workspace_id, fresh=True).view(self.limiter.backend)

    # -- the hot path ---------------------------------------------------------------------

    def limits(self, workspace_id: str, *, fresh: bool = False) -> Limits:
        """The workspace's limits (cached for ``CACHE_S``: a change on another node shows then)."""
        now = self.clock()
        if not fresh:
            cached = self._cache.get(workspace_id)
            if cached is not None and now - cached[0] < CACHE_S:
                return cached[1]
        with self.db.read() as conn:
            row = conn.execute(sa.select(workspace_plans).where(
                workspace_plans.c.workspace_id == workspace_id)).first()
        limits = self.default if row is None else Limits(
            row.plan, row.requests_per_minute, row.rows_per_hour, "plan", rfc3339(row.updated_at), row.updated_by,
            row.storage_bytes)
        with self._lock:
            self._cache[workspace_id] = (now, limits)
        return limits

    def cached_limits(self, workspace_id: str) -> Limits | None:
        """The limits if known without reading the database (None: read them off the loop)."""
        cached = self._cache.get(workspace_id)
        return cached[1] if cached is not None and self.clock() - cached[0] < CACHE_S else None

    def hit_request(self, workspace_id: str, limits: Limits) -> Quota | None:
        """Count one API request (None: unlimited)."""
        if limits.requests_per_minute is None:
            return None
        return self.limiter.hit(f"req:{workspace_id}", limits.requests_per_minute, REQUEST_WINDOW_S)

    def hit_request_nowait(self, workspace_id: str, limits: Limits) -> Quota | None | bool:
        """``hit_request`` when it needs no database call; False when it does."""
        if limits.requests_per_minute is None:
            return None
        quota = self.limiter.hit_nowait(f"req:{workspace_id}", limits.requests_per_minute, REQUEST_WINDOW_S)
        return False if quota is None else quota

    def is_operator(self, principal: Principal) -> bool:
        """Whether ``principal`` is the operator's (never limited: whoever sets the plans must
        always be able to reach the API to change them)."""
        return principal.user_id is not None and principal.user_id == self.operator_user_id()

    def charge_rows(self, principal: Principal, rows: int) -> Quota | None:
        """Count ``rows`` generated rows against the hourly limit, all or nothing: 429
        ``quota_exceeded`` (nothing counted) when they do not fit."""
        workspace_id = principal.workspace_id
        limit = self.limits(workspace_id).rows_per_hour
        if limit is None or rows <= 0 or self.is_operator(principal):
            return None
        try:
            return self.limiter.hit(f"rows:{workspace_id}", limit, ROWS_WINDOW_S, rows)
        except RateLimited as exc:
            quota: Quota = exc.quota  # type: ignore[attr-defined]
            raise refuse(quota, ROWS_WINDOW_S, rows, code="quota_exceeded", message=(
                f"generating {rows:,} rows would exceed the quota of {limit:,} rows per hour "
                f"({quota.remaining:,} left in this hour)")) from None

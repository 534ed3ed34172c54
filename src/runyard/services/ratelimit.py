"""Counting against limits in fixed windows, shared by every API node.

One interface (``Limiter.hit(key, limit, window_s, amount)``), three backends:

- ``RedisLimiter`` (``RUNYARD_REDIS_URL`` set): one Lua script per hit checks and adds
  atomically in Redis, so every node counts on the same counter and the limit is exact.
  If Redis fails, the node **fails open to its own count** (a ``LocalLimiter``: each node
  admits up to the limit by itself) and tries Redis again after ``RETRY_REDIS_S``; an
  outage degrades the limit, it never makes the API unusable.
- ``LeaseLimiter`` (no Redis): nodes lease small batches of allowance from the database
  (``rate_limit_windows``: ``UPDATE … SET used = used + n WHERE used + n <= limit``) and
  spend them locally. The whole limit is never exceeded in the database; what a node has
  leased and not spent is lost to the others until the window ends, so with N nodes
  the admitted count lies within ``limit − N × batch`` and ``limit``.
- ``LocalLimiter``: this process only (the fallback above, and tests).

Windows are fixed and aligned on multiples of ``window_s`` seconds of the epoch (the same
on every node). A refused hit counts nothing: a client that keeps retrying after a 429
does not push its next window's allowance away, and a refused generation of 5,000 rows
leaves the rows it did not take for smaller ones.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from runyard.services.errors import RateLimited
from runyard.store.db import Database
from runyard.store.tables_plans import rate_limit_windows

log = logging.getLogger(__name__)

RETRY_REDIS_S = 5.0  # after a Redis failure, count on this node this long before trying again
REDIS_TIMEOUT_S = 0.25
LEASE_FRACTION = 50  # a lease is 1/50 of the limit (at least 1)
KEEP_WINDOWS_S = 86_400  # older window rows of a key are deleted when a new one is made


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_s: float  # seconds until the window resets


class Limiter(Protocol):
    backend: str

    def hit(self, key: str, limit: int, window_s: int, amount: int = 1) -> Quota:
        """Count ``amount`` against ``limit`` per ``window_s`` for ``key``; raises
        ``RateLimited`` (with the ``quota`` attached, nothing counted) past the limit."""
        ...

    def hit_nowait(self, key: str, limit: int, window_s: int, amount: int = 1) -> Quota | None:
        """``hit`` if it can be answered without waiting on the database, else None (the
        caller then runs ``hit`` off the event loop)."""
        ...


def window_of(now: float, window_s: int) -> tuple[int, float]:
    """(start of the window ``now`` is in, in whole epoch seconds; seconds until it ends)."""
    start = int(now // window_s) * window_s
    return start, start + window_s - now


def refuse(quota: Quota, window_s: int, amount: int, message: str | None = None,
           code: str = "rate_limited") -> RateLimited:
    unit = "requests per minute" if window_s == 60 else f"per {window_s} s"
    error = RateLimited(message or f"rate limit of {quota.limit} {unit} exceeded",
                        code=code, retry_after=max(1, math.ceil(quota.reset_s)),
                        details={"limit": quota.limit, "remaining": quota.remaining, "requested": amount})
    error.quota = quota  # type: ignore[attr-defined]
    return error


class LocalLimiter:
    """Counts in this process. ``clock``: seconds since the epoch (tests pass their own)."""

    backend = "local"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, used)
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_s: int, amount: int = 1) -> Quota:
        start, reset = window_of(self.clock(), window_s)
        with self._lock:
            current, used = self._windows.get(key, (start, 0))
            if current != start:
                used = 0
            admitted = used + amount <= limit
            if admitted:
                used += amount
            self._windows[key] = (start, used)
        quota = Quota(limit, max(0, limit - used), reset)
        if not admitted:
            raise refuse(quota, window_s, amount)
        return quota

    hit_nowait = hit


# KEYS[1]: the window's counter; ARGV: amount, limit, seconds the key lives.
# Returns {1 admitted | 0 refused, used after}.
_REDIS_HIT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if used + amount > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], amount)
if used == amount then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {1, used}
"""


class RedisLimiter:
    """Exact counting in Redis (one atomic script call per hit); fails open to this
    node's own count while Redis is unreachable."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "runyard:rl:", clock: Callable[[], float] = time.time,
                 client: Any = None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.prefix = prefix
        self.clock = clock
        # No retries: a failed call falls back at once (the client's default would retry
        # with backoff for seconds while the request waits).
        self.client = client or redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                                     socket_connect_timeout=REDIS_TIMEOUT_S,
                                                     retry=Retry(NoBackoff(), 0))
        self._script = self.client.register_script(_REDIS_HIT)
        self.fallback = LocalLimiter(clock=clock)
        self._down_until = 0.0  # monotonic time before which Redis is not tried again
        self._errors = (redis.RedisError, OSError)

    @property
    def degraded(self) -> bool:
        """Whether this node is counting on its own after a Redis failure."""
        return time.monotonic() < self._down_until

    def hit(self, key: str, limit: int, window_s: int, amount: int = 1) -> Quota:
        if self.degraded:
            return self.fallback.hit(key, limit, window_s, amount)
        start, reset = window_of(self.clock(), window_s)
        try:
            admitted, used = self._script(keys=[f"{self.prefix}{key}:{start}"],
                                          args=[amount, limit, window_s + 1])
        except self._errors as exc:
            self._down_until = time.monotonic() + RETRY_REDIS_S
            log.warning("rate limiting: Redis failed (%s); counting on this node for %.0f s", exc, RETRY_REDIS_S)
            return self.fallback.hit(key, limit, window_s, amount)
        quota = Quota(limit, max(0, limit - int(used)), reset)
        if not admitted:
            raise refuse(quota, window_s, amount)
        return quota

    # A loopback or LAN round trip (bounded by REDIS_TIMEOUT_S) costs less than a thread hop.
    hit_nowait = hit

    def close(self) -> None:
        self.client.close()


@dataclass
class _Lease:
    window_start: int
    left: int  # leased by this node and not spent yet
    shared_used: int  # the window's count in the database when last seen


class LeaseLimiter:
    """Counts in the database by leases: a node takes ``max(1, limit // 50)`` (or what a
    hit needs, if more) at a time by an atomic conditional UPDATE and spends it locally."""

    backend = "database"

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time,
                 lease_fraction: int = LEASE_FRACTION) -> None:
        self.db = db
        self.clock = clock
        self.lease_fraction = lease_fraction
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()  # guards _leases (never held across a database call)
        self._key_locks: dict[str, threading.Lock] = {}

    def batch(self, limit: int) -> int:
        return max(1, limit // self.lease_fraction)

    def hit_nowait(self, key: str, limit: int, window_s: int, amount: int = 1) -> Quota | None:
        start, reset = window_of(self.clock(), window_s)
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.window_start != start or lease.left < amount:
                return None
            lease.left -= amount
            return Quota(limit, max(0, limit - lease.shared_used + lease.left), reset)

    def hit(self, key: str, limit: int, window_s: int, amount: int = 1) -> Quota:
        start, reset = window_of(self.clock(), window_s)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one lease per key at a time; other keys and hit_nowait go on
            with self._lock:
                lease = self._leases.get(key)
                if lease is None or lease.window_start != start:
                    lease = self._leases[key] = _Lease(start, 0, 0)
                if lease.left >= amount:
                    lease.left -= amount
                    return Quota(limit, max(0, limit - lease.shared_used + lease.left), reset)
                need = amount - lease.left
            # A whole batch if it fits, else exactly what this hit lacks.
            taken, used = 0, limit
            for take in dict.fromkeys((max(need, self.batch(limit)), need)):
                shared = self._take(key, start, limit, take)
                if shared is not None:
                    taken, used = take, shared
                    break
            with self._lock:
                lease.left += taken
                lease.shared_used = used  # on refusal: less than asked is left in the database
                if not taken:
                    raise refuse(Quota(limit, lease.left, reset), window_s, amount)
                lease.left -= amount
                return Quota(limit, max(0, limit - lease.shared_used + lease.left), reset)

    def _take(self, key: str, start: int, limit: int, take: int) -> int | None:
        """Add ``take`` to the window's ``used`` if it stays within ``limit``: the count
        after, or None when it would not fit."""
        t = rate_limit_windows
        row = (t.c.key == key) & (t.c.window_start == start)
        with self.db.write() as conn:
            updated = conn.execute(t.update().where(row, t.c.used + take <= limit).values(used=t.c.used + take))
            if updated.rowcount:
                return int(conn.execute(sa.select(t.c.used).where(row)).scalar_one())
            if conn.execute(sa.select(t.c.used).where(row)).first() is not None or take > limit:
                return None
        # The window's first lease: make its row (a node that raced us made it first: retry).
        try:
            with self.db.write() as conn:
                conn.execute(t.delete().where(t.c.key == key, t.c.window_start < start - KEEP_WINDOWS_S))
                conn.execute(t.insert().values(key=key, window_start=start, used=take))
            return take
        except sa.exc.IntegrityError:
            with self.db.write() as conn:
                updated = conn.execute(t.update().where(row, t.c.used + take <= limit).values(used=t.c.used + take))
                if updated.rowcount:
                    return int(conn.execute(sa.select(t.c.used).where(row)).scalar_one())
            return None


def make_limiter(redis_url: str | None, db: Database) -> Limiter:
    """Redis when a URL is configured, else database leases."""
    if redis_url:
        return RedisLimiter(redis_url)
    return LeaseLimiter(db)


class RateLimiter:
    """One requests-per-minute limit for every workspace, counted on this node: the limiter
    before plans, for callers that still hold one (the API counts through services.plans)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self._local = LocalLimiter(clock=clock)

    def hit(self, workspace_id: str) -> Quota:
        return self._local.hit(f"req:{workspace_id}", self.per_minute, 60)

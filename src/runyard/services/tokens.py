"""API tokens: random keys shown once, stored as SHA-256, with role, expiry and restrictions."""

from __future__ import annotations

import hashlib
import secrets as pysecrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import ROLES, Permission, Principal, rank
from runyard.services.errors import NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from runyard.services.pagination import Page, check_limit, decode_cursor, encode_cursor, paginate
from runyard.store.db import Database
from runyard.store.tables import tokens
from runyard.timeutil import as_utc, rfc3339, utcnow

KEY_PREFIX = "ry_"
_CACHE_TTL_S = 5.0
MANAGE_TOKENS = Permission("admin", "manage tokens")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + pysecrets.token_urlsafe(32)


def token_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"], "object": "token", "name": m["name"], "role": m["role"], "prefix": m["prefix"],
        "restrictions": m["restrictions"] or {}, "expires_at": rfc3339(m["expires_at"]),
        "created_at": rfc3339(m["created_at"]), "last_used_at": rfc3339(m["last_used_at"]),
    }


def _normalise_restrictions(raw: dict[str, Any] | None) -> dict[str, list[str]]:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValidationFailed("restrictions must be an object", details={"field": "restrictions"})
    unknown = set(raw) - {"tools", "namespaces"}
    if unknown:
        raise ValidationFailed(f"unknown restriction(s): {', '.join(sorted(unknown))}",
                               details={"field": "restrictions"})
    out: dict[str, list[str]] = {}
    for key in ("tools", "namespaces"):
        values = raw.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValidationFailed(f"restrictions.{key} must be a list of names",
                                   details={"field": f"restrictions.{key}"})
        out[key] = sorted(set(values))
    if out["namespaces"]:
        # Namespaces do not exist yet: a restriction nothing enforces must not be accepted.
        raise ValidationFailed("restrictions.namespaces is not supported yet (there are no namespaces to "
                               "restrict a token to); leave it out or empty",
                               code="unsupported_restriction", details={"field": "restrictions.namespaces"})
    return out


def _restrictions_of(row: Any) -> tuple[list[str], list[str]]:
    stored = row.restrictions or {}
    return list(stored.get("tools") or ()), list(stored.get("namespaces") or ())


def _visible_to(principal: Principal, row: Any) -> bool:
    """A token is visible to (listable, readable, deletable by) an admin that could have
    created it: a role no higher and restrictions within the principal's own."""
    return rank(row.role) <= rank(principal.role) and principal.covers(*_restrictions_of(row))


class TokenService:
    """``clock`` (the time now, UTC) decides expiry and stamps rows; ``monotonic`` times the
    key cache. Tests pass their own to make a key expire without waiting."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.clock = clock
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, Principal, datetime | None]] = {}
        self._cache_lock = threading.Lock()

    def create(self, principal: Principal, *, name: str, role: str, expires_at: datetime | None = None,
               restrictions: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new key in the principal's workspace. A key can only create keys with a role
        no higher than its own, restrictions within its own (a restricted key mints keys
        at least as restricted; an unrestricted one may restrict freely) and, when it
        expires, an expiry no later than its own (else it could outlive itself)."""
        MANAGE_TOKENS.check(principal)
        normalised = self._check(name, role, expires_at, restrictions)
        if rank(role) > rank(principal.role):
            raise PermissionDenied(f"a {principal.role} token cannot create a {role} token",
                                   code="token_escalation", details={"field": "role"})
        if not principal.covers(normalised["tools"], normalised["namespaces"]):
            raise PermissionDenied(
                "a restricted token can only create tokens restricted to some of its own tools "
                f"({', '.join(sorted(principal.tools))})", code="token_escalation",
                details={"field": "restrictions.tools", "allowed": sorted(principal.tools)})
        ceiling, wanted = principal.expires_at, as_utc(expires_at)
        if ceiling is not None and (wanted is None or wanted > ceiling):
            raise PermissionDenied(
                f"a token that expires ({rfc3339(ceiling)}) can only create tokens that expire no later",
                code="token_escalation", details={"field": "expires_at", "latest": rfc3339(ceiling)})
        return self._insert(principal.workspace_id, name=name, role=role, expires_at=expires_at,
                            restrictions=normalised)

    def _check(self, name: str, role: str, expires_at: datetime | None,
               restrictions: dict[str, Any] | None) -> dict[str, list[str]]:
        if not name or len(name) > 200:
            raise ValidationFailed("name must be 1-200 characters", details={"field": "name"})
        if role not in ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
        if expires_at is not None and as_utc(expires_at) <= self.clock():  # type: ignore[operator]
            raise ValidationFailed("expires_at must be in the future", details={"field": "expires_at"})
        return _normalise_restrictions(restrictions)

    def _insert(self, workspace_id: str, *, name: str, role: str, expires_at: datetime | None,
                restrictions: dict[str, list[str]], key: str | None = None) -> dict[str, Any]:
        key = key or generate_key()
        row = {
            "id": new_id("tok"), "workspace_id": workspace_id, "name": name, "role": role,
            "key_hash": hash_key(key), "prefix": key[:10], "restrictions": restrictions,
            "expires_at": expires_at, "created_at": self.clock(),
        }
        with self.db.write() as conn:
            conn.execute(tokens.insert().values(**row))
            created = conn.execute(sa.select(tokens).where(tokens.c.id == row["id"])).one()
        view = token_view(created)
        view["key"] = key
        return view

    def ensure_bootstrap(self, workspace_id: str, key: str) -> None:
        """Make ``key`` a valid admin key (idempotent across restarts)."""
        with self.db.read() as conn:
            found = conn.execute(sa.select(tokens.c.id).where(tokens.c.key_hash == hash_key(key))).first()
        if not found:
            self._insert(workspace_id, name="bootstrap admin", role="admin", expires_at=None,
                         restrictions=_normalise_restrictions(None), key=key)

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        """Live tokens, newest first; a restricted admin sees only those it could have created."""
        MANAGE_TOKENS.check(principal)
        query = sa.select(tokens).where(tokens.c.workspace_id == principal.workspace_id,
                                        tokens.c.deleted_at.is_(None))
        if not principal.restricted:
            with self.db.read() as conn:
                rows, nxt, total = paginate(conn, query, sort_col=tokens.c.id, id_col=tokens.c.id,
                                            descending=True, cursor=cursor, limit=limit,
                                            include_total=include_total)
            return Page([token_view(r) for r in rows], nxt, total)
        # Visibility depends on the JSON restrictions, which SQL cannot compare portably:
        # filter in Python (a workspace has few tokens), same cursor format as paginate's.
        check_limit(limit)
        after: str | None = None
        if cursor:
            values = decode_cursor(cursor)
            if len(values) != 2 or not isinstance(values[1], str):
                raise ValidationFailed("cursor is malformed", code="invalid_cursor")
            after = values[1]
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(tokens.c.id.desc())).all()
        visible = [r for r in rows if _visible_to(principal, r)]
        window = [r for r in visible if after is None or r.id < after]
        page, more = window[:limit], len(window) > limit
        nxt = encode_cursor([page[-1].id, page[-1].id]) if more else None
        return Page([token_view(r) for r in page], nxt, len(visible) if include_total else None)

    def _visible_row(self, principal: Principal, token_id: str) -> Any:
        MANAGE_TOKENS.check(principal)
        with self.db.read() as conn:
            row = conn.execute(sa.select(tokens).where(
                tokens.c.id == token_id, tokens.c.workspace_id == principal.workspace_id,
                tokens.c.deleted_at.is_(None))).first()
        if row is None or not _visible_to(principal, row):
            raise NotFound(f"token {token_id!r} not found", code="token_not_found")
        return row

    def get(self, principal: Principal, token_id: str) -> dict[str, Any]:
        return token_view(self._visible_row(principal, token_id))

    def delete(self, principal: Principal, token_id: str) -> None:
        self._visible_row(principal, token_id)
        with self.db.write() as conn:
            result = conn.execute(tokens.update().where(
                tokens.c.id == token_id, tokens.c.workspace_id == principal.workspace_id,
                tokens.c.deleted_at.is_(None),
            ).values(deleted_at=self.clock()))
        if result.rowcount == 0:
            raise NotFound(f"token {token_id!r} not found", code="token_not_found")
        with self._cache_lock:
            self._cache = {k: v for k, v in self._cache.items() if v[1].token_id != token_id}

    def authenticate_cached(self, key: str) -> Principal | None:
        """The principal for ``key`` if it is in the cache (no I/O), else None."""
        with self._cache_lock:
            cached = self._cache.get(hash_key(key))
        if cached is None or cached[0] <= self.monotonic():
            return None
        if cached[2] is not None and cached[2] <= self.clock():
            return None  # expired: the full path raises the proper error
        return cached[1]

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        digest = hash_key(key)
        now_mono = self.monotonic()
        with self._cache_lock:
            cached = self._cache.get(digest)
        if cached and cached[0] > now_mono:
            principal, expires_at = cached[1], cached[2]
        else:
            with self.db.read() as conn:
                row = conn.execute(sa.select(tokens).where(tokens.c.key_hash == digest)).first()
            if row is None or row.deleted_at is not None:
                raise Unauthenticated("invalid API key", code="invalid_api_key")
            restrictions = row.restrictions or {}
            expires_at = as_utc(row.expires_at)
            principal = Principal(
                token_id=row.id, workspace_id=row.workspace_id, role=row.role,
                tools=frozenset(restrictions.get("tools") or ()),
                namespaces=frozenset(restrictions.get("namespaces") or ()), expires_at=expires_at,
            )
            with self._cache_lock:
                self._cache[digest] = (now_mono + _CACHE_TTL_S, principal, expires_at)
            self._touch(row.id)
        if expires_at is not None and expires_at <= self.clock():
            raise Unauthenticated("API key has expired", code="expired_api_key")
        return principal

    def _touch(self, token_id: str) -> None:
        # Recorded at most once per cache period, so it costs nothing on the hot path.
        with self.db.write() as conn:
            conn.execute(tokens.update().where(tokens.c.id == token_id).values(last_used_at=self.clock()))

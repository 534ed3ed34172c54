"""API tokens: random keys shown once, stored as SHA-256, with role, expiry and restrictions."""

from __future__ import annotations

import hashlib
import secrets as pysecrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import ROLES, Grant, Permission, Principal, rank
from runyard.services.errors import NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from runyard.services.namespaces import NamespaceService
from runyard.services.pagination import Page, check_limit, decode_cursor, encode_cursor
from runyard.services.users import UserService, cap_role
from runyard.store.db import Database
from runyard.store.tables import tokens, tools
from runyard.store.tables_data import datasets, namespaces, users
from runyard.timeutil import as_utc, rfc3339, utcnow

KEY_PREFIX = "ry_"
_CACHE_TTL_S = 5.0
MANAGE_TOKENS = Permission("member", "manage tokens")  # their own; admins: everyone's
MANAGE_OTHERS_TOKENS = Permission("admin", "manage other users' tokens")
SESSION_TTL = timedelta(hours=12)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + pysecrets.token_urlsafe(32)


def grants_of(stored: dict[str, Any]) -> tuple[Grant, ...]:
    return tuple(Grant(g["namespace_id"], g.get("dataset_id"), g["access"]) for g in stored.get("grants") or ())


def _restrictions_of(row: Any) -> tuple[list[str], tuple[Grant, ...]]:
    stored = row.restrictions or {}
    return list(stored.get("tools") or ()), grants_of(stored)


def _visible_to(principal: Principal, row: Any) -> bool:
    """A token is visible to (listable, readable, deletable by) its own user, and to an
    admin that could have created it: a role no higher and restrictions within its own."""
    if row.user_id != principal.user_id and not MANAGE_OTHERS_TOKENS.allows(principal):
        return False
    return rank(row.role) <= rank(principal.role) and principal.covers(*_restrictions_of(row))


class Names:
    """Resolves the names in a restriction to the ids it is stored by, and back."""

    def __init__(self, conn: sa.Connection, workspace_id: str) -> None:
        self.conn = conn
        self.workspace_id = workspace_id

    def tool_ids(self, names: list[str]) -> list[str]:
        rows = self.conn.execute(sa.select(tools.c.id, tools.c.name).where(
            tools.c.workspace_id == self.workspace_id, tools.c.deleted_at.is_(None),
            sa.or_(tools.c.name.in_(names), tools.c.id.in_(names)))).all()
        found = {r.name: r.id for r in rows} | {r.id: r.id for r in rows}
        missing = [n for n in names if n not in found]
        if missing:
            raise ValidationFailed(f"no such tool(s): {', '.join(missing)}", code="tool_not_found",
                                   details={"field": "restrictions.tools", "tools": missing})
        return sorted({found[n] for n in names})

    def grant(self, raw: dict[str, Any], index: int) -> Grant:
        field = f"restrictions.grants[{index}]"
        ns = self.conn.execute(sa.select(namespaces.c.id).where(
            namespaces.c.workspace_id == self.workspace_id, namespaces.c.name == raw.get("namespace"))).first()
        if ns is None:
            raise ValidationFailed(f"no such namespace: {raw.get('namespace')!r}", code="namespace_not_found",
                                   details={"field": field})
        dataset_id = None
        if raw.get("dataset"):
            ds = self.conn.execute(sa.select(datasets.c.id).where(
                datasets.c.namespace_id == ns.id, datasets.c.name == raw["dataset"])).first()
            if ds is None:
                raise ValidationFailed(f"no such dataset: {raw['namespace']}/{raw['dataset']}",
                                       code="dataset_not_found", details={"field": field})
            dataset_id = ds.id
        access = raw.get("access", "read")
        if access not in ("read", "write"):
            raise ValidationFailed("access must be read or write", details={"field": f"{field}.access"})
        return Grant(ns.id, dataset_id, access)

    def view(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Restrictions as names (a tool or dataset since deleted shows its id)."""
        tool_ids = list(stored.get("tools") or ())
        grants = grants_of(stored)
        tool_names = dict(self.conn.execute(sa.select(tools.c.id, tools.c.name).where(
            tools.c.id.in_(tool_ids), tools.c.deleted_at.is_(None))).all()) if tool_ids else {}
        ns_ids = {g.namespace_id for g in grants}
        ds_ids = {g.dataset_id for g in grants if g.dataset_id}
        ns_names = dict(self.conn.execute(sa.select(namespaces.c.id, namespaces.c.name).where(
            namespaces.c.id.in_(ns_ids))).all()) if ns_ids else {}
        ds_names = dict(self.conn.execute(sa.select(datasets.c.id, datasets.c.name).where(
            datasets.c.id.in_(ds_ids))).all()) if ds_ids else {}
        return {
            "tools": [tool_names.get(t, t) for t in tool_ids],
            "grants": [{"namespace": ns_names.get(g.namespace_id, g.namespace_id),
                        "dataset": ds_names.get(g.dataset_id, g.dataset_id) if g.dataset_id else None,
                        "access": g.access} for g in grants],
        }


def token_view(row: Any, names: Names) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"], "object": "token", "name": m["name"], "role": m["role"], "prefix": m["prefix"],
        "user_id": m["user_id"], "restrictions": names.view(m["restrictions"] or {}),
        "expires_at": rfc3339(m["expires_at"]), "created_at": rfc3339(m["created_at"]),
        "last_used_at": rfc3339(m["last_used_at"]),
    }


def _parse_restrictions(raw: dict[str, Any] | None, names: Names) -> dict[str, Any]:
    """Restrictions as given (tool names, grants by namespace/dataset name) → as stored (ids)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValidationFailed("restrictions must be an object", details={"field": "restrictions"})
    unknown = set(raw) - {"tools", "grants"}
    if unknown:
        raise ValidationFailed(f"unknown restriction(s): {', '.join(sorted(unknown))}",
                               code="unsupported_restriction", details={"field": "restrictions"})
    tool_names = raw.get("tools") or []
    if not isinstance(tool_names, list) or not all(isinstance(v, str) and v for v in tool_names):
        raise ValidationFailed("restrictions.tools must be a list of tool names",
                               details={"field": "restrictions.tools"})
    raw_grants = raw.get("grants") or []
    if not isinstance(raw_grants, list) or not all(isinstance(g, dict) for g in raw_grants):
        raise ValidationFailed("restrictions.grants must be a list of {namespace, dataset?, access}",
                               details={"field": "restrictions.grants"})
    grants = sorted({names.grant(g, i) for i, g in enumerate(raw_grants)},
                    key=lambda g: (g.namespace_id, g.dataset_id or "", g.access))
    return {"tools": names.tool_ids(tool_names) if tool_names else [],
            "grants": [{"namespace_id": g.namespace_id, "dataset_id": g.dataset_id, "access": g.access}
                       for g in grants]}


class TokenService:
    """``clock`` (the time now, UTC) decides expiry and stamps rows; ``monotonic`` times the
    key cache. Tests pass their own to make a key expire without waiting."""

    def __init__(self, db: Database, users_service: UserService, *, clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.users = users_service
        self.clock = clock
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, Principal, datetime | None]] = {}
        self._cache_lock = threading.Lock()

    def create(self, principal: Principal, *, name: str, role: str, expires_at: datetime | None = None,
               restrictions: dict[str, Any] | None = None, user: str | None = None) -> dict[str, Any]:
        """A new key for the principal's user (or, for an admin, for ``user``). A key can only
        create keys with a role no higher than its own and the key's user's, restrictions
        within its own (a restricted key mints keys at least as restricted; an unrestricted
        one may restrict freely) and, when it expires, an expiry no later than its own (else
        it could outlive itself)."""
        MANAGE_TOKENS.check(principal)
        self._check(name, role, expires_at)
        with self.db.read() as conn:
            owner = self._owner(conn, principal, user)
            normalised = _parse_restrictions(restrictions, Names(conn, principal.workspace_id))
        if rank(role) > rank(principal.role) or rank(role) > rank(owner.role):
            raise PermissionDenied(f"a {principal.role} token cannot create a {role} token for a "
                                   f"{owner.role} user", code="token_escalation", details={"field": "role"})
        if not principal.covers(normalised["tools"], grants_of(normalised)):
            raise PermissionDenied(
                "a restricted token can only create tokens restricted within its own restrictions",
                code="token_escalation", details={"field": "restrictions"})
        ceiling, wanted = principal.expires_at, as_utc(expires_at)
        if ceiling is not None and (wanted is None or wanted > ceiling):
            raise PermissionDenied(
                f"a token that expires ({rfc3339(ceiling)}) can only create tokens that expire no later",
                code="token_escalation", details={"field": "expires_at", "latest": rfc3339(ceiling)})
        return self._insert(principal.workspace_id, owner.id, name=name, role=role, expires_at=expires_at,
                            restrictions=normalised)

    def _owner(self, conn: sa.Connection, principal: Principal, username: str | None) -> Any:
        if username is None:
            row = self.users.by_id(conn, principal.workspace_id, principal.user_id or "")
            if row is None:
                raise Unauthenticated("this key's user no longer exists", code="invalid_api_key")
            return row
        row = conn.execute(sa.select(users).where(users.c.workspace_id == principal.workspace_id,
                                                  users.c.username == username,
                                                  users.c.deleted_at.is_(None))).first()
        if row is None or (row.id != principal.user_id and not MANAGE_OTHERS_TOKENS.allows(principal)):
            raise NotFound(f"user {username!r} not found", code="user_not_found", details={"field": "user"})
        return row

    def _check(self, name: str, role: str, expires_at: datetime | None) -> None:
        if not name or len(name) > 200:
            raise ValidationFailed("name must be 1-200 characters", details={"field": "name"})
        if role not in ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
        if expires_at is not None and as_utc(expires_at) <= self.clock():  # type: ignore[operator]
            raise ValidationFailed("expires_at must be in the future", details={"field": "expires_at"})

    def _insert(self, workspace_id: str, user_id: str, *, name: str, role: str, expires_at: datetime | None,
                restrictions: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        key = key or generate_key()
        row = {
            "id": new_id("tok"), "workspace_id": workspace_id, "user_id": user_id, "name": name, "role": role,
            "key_hash": hash_key(key), "prefix": key[:10], "restrictions": restrictions,
            "expires_at": expires_at, "created_at": self.clock(),
        }
        with self.db.write() as conn:
            conn.execute(tokens.insert().values(**row))
            created = conn.execute(sa.select(tokens).where(tokens.c.id == row["id"])).one()
            view = token_view(created, Names(conn, workspace_id))
        view["key"] = key
        return view

    def ensure_bootstrap(self, workspace_id: str, key: str, admin_user_id: str) -> None:
        """Make ``key`` a valid admin key of user ``admin`` (idempotent across restarts)."""
        with self.db.read() as conn:
            found = conn.execute(sa.select(tokens.c.id).where(tokens.c.key_hash == hash_key(key))).first()
        if not found:
            self._insert(workspace_id, admin_user_id, name="bootstrap admin", role="admin", expires_at=None,
                         restrictions={"tools": [], "grants": []}, key=key)

    def session(self, workspace_id: str, username: str, password: str, *, label: str = "sign-in") -> dict[str, Any]:
        """Sign in with a password: a new key of the user's role that expires in 12 hours."""
        row = self.users.verify_password(workspace_id, username, password)
        return self._insert(workspace_id, row.id, name=label[:200] or "sign-in", role=row.role,
                            expires_at=self.clock() + SESSION_TTL, restrictions={"tools": [], "grants": []})

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        """Live tokens, newest first: a user's own; for an admin, those it could have created."""
        MANAGE_TOKENS.check(principal)
        check_limit(limit)
        query = sa.select(tokens).where(tokens.c.workspace_id == principal.workspace_id,
                                        tokens.c.deleted_at.is_(None))
        if not MANAGE_OTHERS_TOKENS.allows(principal):
            query = query.where(tokens.c.user_id == principal.user_id)
        after: str | None = None
        if cursor:
            values = decode_cursor(cursor)
            if len(values) != 2 or not isinstance(values[1], str):
                raise ValidationFailed("cursor is malformed", code="invalid_cursor")
            after = values[1]
        # Visibility depends on the JSON restrictions, which SQL cannot compare portably:
        # filter in Python (a workspace has few tokens).
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(tokens.c.id.desc())).all()
            visible = [r for r in rows if _visible_to(principal, r)]
            window = [r for r in visible if after is None or r.id < after]
            page, more = window[:limit], len(window) > limit
            names = Names(conn, principal.workspace_id)
            items = [token_view(r, names) for r in page]
        nxt = encode_cursor([page[-1].id, page[-1].id]) if more else None
        return Page(items, nxt, len(visible) if include_total else None)

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
        row = self._visible_row(principal, token_id)
        with self.db.read() as conn:
            return token_view(row, Names(conn, principal.workspace_id))

    def principal_of(self, principal: Principal, token_id: str) -> Principal:
        """The principal a visible token acts as (for ``/tokens/{id}/permissions``)."""
        row = self._visible_row(principal, token_id)
        with self.db.read() as conn:
            user = self.users.by_id(conn, row.workspace_id, row.user_id or "")
        return self._principal(row, user)

    def permissions(self, principal: Principal, token_id: str, namespaces: NamespaceService) -> dict[str, Any]:
        """What a visible token may do: role, tools, and its access to each namespace."""
        target = self.principal_of(principal, token_id)
        with self.db.read() as conn:
            names = Names(conn, principal.workspace_id).view({"tools": sorted(target.tools)})
        return {"object": "token_permissions", "token_id": token_id, "user": target.username, "role": target.role,
                "tools": names["tools"] if target.tools else None,
                "namespaces": namespaces.permissions(target)}

    def delete(self, principal: Principal, token_id: str) -> None:
        self._visible_row(principal, token_id)
        with self.db.write() as conn:
            result = conn.execute(tokens.update().where(
                tokens.c.id == token_id, tokens.c.workspace_id == principal.workspace_id,
                tokens.c.deleted_at.is_(None),
            ).values(deleted_at=self.clock()))
        if result.rowcount == 0:
            raise NotFound(f"token {token_id!r} not found", code="token_not_found")
        self.forget(lambda p: p.token_id == token_id)

    def revoke_session_key(self, workspace_id: str, token_id: str) -> None:
        """Revoke the key a password sign-in made for a web UI session, as that session ends."""
        with self.db.write() as conn:
            conn.execute(tokens.update().where(tokens.c.id == token_id, tokens.c.workspace_id == workspace_id,
                                               tokens.c.deleted_at.is_(None)).values(deleted_at=self.clock()))
        self.forget(lambda p: p.token_id == token_id)

    def forget(self, which: Callable[[Principal], bool]) -> None:
        """Drop cached principals (a token revoked, a user deleted or demoted)."""
        with self._cache_lock:
            self._cache = {k: v for k, v in self._cache.items() if not which(v[1])}

    def authenticate_cached(self, key: str) -> Principal | None:
        """The principal for ``key`` if it is in the cache (no I/O), else None."""
        with self._cache_lock:
            cached = self._cache.get(hash_key(key))
        if cached is None or cached[0] <= self.monotonic():
            return None
        if cached[2] is not None and cached[2] <= self.clock():
            return None  # expired: the full path raises the proper error
        return cached[1]

    @staticmethod
    def _principal(row: Any, user: Any) -> Principal:
        restrictions = row.restrictions or {}
        return Principal(
            token_id=row.id, workspace_id=row.workspace_id, role=cap_role(row.role, user.role),  # type: ignore[arg-type]
            user_id=user.id, username=user.username, tools=frozenset(restrictions.get("tools") or ()),
            grants=grants_of(restrictions), expires_at=as_utc(row.expires_at))

    def principal_of_token(self, workspace_id: str, token_id: str) -> Principal:
        """The principal a live token acts as now, by id (a web UI session holds its key's id,
        never the key): 401 ``invalid_api_key`` once it is revoked or its user is gone,
        ``expired_api_key`` once it expired."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id,
                                                       tokens.c.workspace_id == workspace_id)).first()
            user = self.users.by_id(conn, workspace_id, row.user_id or "") if row is not None else None
        if row is None or row.deleted_at is not None or user is None:
            raise Unauthenticated("this key was revoked", code="invalid_api_key")
        principal = self._principal(row, user)
        if principal.expires_at is not None and principal.expires_at <= self.clock():
            raise Unauthenticated("API key has expired", code="expired_api_key")
        return principal

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
                user = self.users.by_id(conn, row.workspace_id, row.user_id or "") if row is not None else None
            if row is None or row.deleted_at is not None or user is None:
                raise Unauthenticated("invalid API key", code="invalid_api_key")
            principal = self._principal(row, user)
            expires_at = principal.expires_at
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

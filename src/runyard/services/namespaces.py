"""Namespaces: named, owned groups of datasets, private (shared with members) or public.

What a key may do with a namespace is its user's access (admin, owner, member share or, for
a public namespace, read) capped by the key's role (a viewer key only reads) and narrowed by
the key's grants. Whatever a key cannot see answers 404, never 403.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.store.db import Database
from runyard.store.tables_data import datasets, namespace_members, namespaces, users
from runyard.timeutil import rfc3339, utcnow

Level = Literal["read", "write", "owner"]
_LEVEL_RANK = {"read": 0, "write": 1, "owner": 2}
# Namespace and dataset names: no quotes, dots or spaces, so "ns"."ds" in SQL is unambiguous.
DATA_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
CREATE_NAMESPACES = Permission("member", "create namespaces")


# Schema names DuckDB keeps for itself: a namespace so named could not be told apart in SQL.
RESERVED_NAMESPACES = frozenset({"system", "temp", "memory", "information_schema", "pg_catalog", "main"})


def check_data_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not DATA_NAME_RE.match(name):
        raise ValidationFailed(f"a {what} name is 1-64 letters, digits, '-' or '_', starting with a letter or "
                               f"digit (no quotes, dots or spaces)", code=f"invalid_{what}_name",
                               details={"field": "name"})
    if what == "namespace" and name.casefold() in RESERVED_NAMESPACES:
        raise ValidationFailed(f"{name!r} is reserved by the SQL engine", code="invalid_namespace_name",
                               details={"field": "name"})
    return name


def same_name(column: Any, name: str) -> Any:
    """Names are matched without case: SQL identifiers are, so "Sales" and "sales" would collide."""
    return sa.func.lower(column) == name.lower()


def min_level(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    return a if _LEVEL_RANK[a] <= _LEVEL_RANK[b] else b


def at_least(level: str | None, wanted: str) -> bool:
    return level is not None and _LEVEL_RANK[level] >= _LEVEL_RANK[wanted]


@dataclass(frozen=True)
class NamespaceAccess:
    """A namespace row and what the principal's user may do with it (before grants)."""

    row: Any
    user_level: str | None

    def level(self, principal: Principal, dataset_id: str | None = None) -> str | None:
        """The principal's level on the namespace as a whole (``dataset_id`` None) or on one of
        its datasets: the user's level, capped by the key's role and narrowed by its grants."""
        level = self.user_level
        if level is not None and principal.role == "viewer":
            level = "read"
        if level is None or not principal.grants:
            return level
        best: str | None = None
        for g in principal.grants:
            if g.namespace_id == self.row.id and (g.dataset_id is None or g.dataset_id == dataset_id):
                best = g.access if best is None else max(best, g.access, key=_LEVEL_RANK.__getitem__)
        return min_level(level, best)

    def visible(self, principal: Principal) -> bool:
        return self.user_level is not None and principal.grants_touch(self.row.id)


def user_level(principal: Principal, row: Any, member_access: str | None) -> str | None:
    if principal.role == "admin" or row.owner_id == principal.user_id:
        return "owner"
    if member_access is not None:
        return member_access
    return "read" if not row.private else None


class NamespaceService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        # Called with a namespace id when it goes (the dataset service removes its data).
        self.on_delete: Callable[[sa.Connection, str], None] = lambda conn, ns_id: None

    # -- access --------------------------------------------------------------------------
    def access(self, conn: sa.Connection, principal: Principal, name: str) -> NamespaceAccess:
        """The namespace ``name`` as the principal sees it; 404 if it cannot see it."""
        row = conn.execute(sa.select(namespaces).where(namespaces.c.workspace_id == principal.workspace_id,
                                                       namespaces.c.name == name)).first()
        if row is not None:
            member = conn.execute(sa.select(namespace_members.c.access).where(
                namespace_members.c.namespace_id == row.id,
                namespace_members.c.user_id == (principal.user_id or ""))).scalar()
            found = NamespaceAccess(row, user_level(principal, row, member))
            if found.visible(principal):
                return found
        raise NotFound(f"namespace {name!r} not found", code="namespace_not_found", details={"namespace": name})

    def require(self, conn: sa.Connection, principal: Principal, name: str, wanted: str,
                dataset_id: str | None = None) -> NamespaceAccess:
        """The namespace, if the principal has ``wanted`` (read|write|owner) on it (or on the
        dataset); 404 when it cannot see it, 403 when it can but may not do this."""
        found = self.access(conn, principal, name)
        if not at_least(found.level(principal, dataset_id), wanted):
            action = {"read": "read", "write": "write to", "owner": "manage"}[wanted]
            raise PermissionDenied(f"this key cannot {action} namespace {name!r}", code="namespace_access_denied",
                                   details={"namespace": name, "required_access": wanted})
        return found

    def visible_rows(self, conn: sa.Connection, principal: Principal) -> list[NamespaceAccess]:
        rows = conn.execute(sa.select(namespaces).where(namespaces.c.workspace_id == principal.workspace_id)
                            .order_by(namespaces.c.name)).all()
        mine = dict(conn.execute(sa.select(namespace_members.c.namespace_id, namespace_members.c.access).where(
            namespace_members.c.user_id == (principal.user_id or ""))).all())
        found = [NamespaceAccess(r, user_level(principal, r, mine.get(r.id))) for r in rows]
        return [f for f in found if f.visible(principal)]

    def permissions(self, target: Principal) -> list[dict[str, Any]]:
        """What ``target`` may do with each namespace it can see (``/tokens/{id}/permissions``)."""
        out = []
        with self.db.read() as conn:
            for found in self.visible_rows(conn, target):
                extra: dict[str, str] = {}
                whole = found.level(target)
                for g in target.grants:
                    if g.namespace_id == found.row.id and g.dataset_id:
                        level = found.level(target, g.dataset_id)
                        name = conn.execute(sa.select(datasets.c.name).where(datasets.c.id == g.dataset_id)).scalar()
                        if name and level and level != whole:
                            extra[name] = level
                out.append({"namespace": found.row.name, "access": whole, "datasets": extra})
        return out

    # -- views ---------------------------------------------------------------------------
    def _view(self, conn: sa.Connection, principal: Principal, found: NamespaceAccess) -> dict[str, Any]:
        row = found.row
        owner = conn.execute(sa.select(users.c.username).where(users.c.id == row.owner_id)).scalar()
        count = conn.execute(sa.select(sa.func.count()).select_from(datasets).where(
            datasets.c.namespace_id == row.id)).scalar_one()
        return {"id": row.id, "object": "namespace", "name": row.name, "owner": owner, "private": row.private,
                "description": row.description, "field_definitions": row.field_definitions or {},
                "datasets": count, "access": found.level(principal),
                "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}

    # -- operations ----------------------------------------------------------------------
    def create(self, principal: Principal, *, name: str, private: bool = True, description: str = "",
               field_definitions: dict[str, str] | None = None) -> dict[str, Any]:
        CREATE_NAMESPACES.check(principal)
        if principal.grants:
            raise PermissionDenied("a key restricted to some data cannot create namespaces", code="restricted")
        check_data_name(name, "namespace")
        now = self.clock()
        with self.db.write() as conn:
            exists = conn.execute(sa.select(namespaces.c.id).where(
                namespaces.c.workspace_id == principal.workspace_id, same_name(namespaces.c.name, name))).first()
            if exists:
                raise Conflict(f"namespace {name!r} already exists", code="namespace_exists",
                               details={"namespace": name})
            conn.execute(namespaces.insert().values(
                id=new_id("ns"), workspace_id=principal.workspace_id, name=name, owner_id=principal.user_id,
                private=bool(private), description=description or "",
                field_definitions=check_definitions(field_definitions), created_at=now, updated_at=now))
            return self._view(conn, principal, self.access(conn, principal, name))

    def list(self, principal: Principal, *, owner: str = "all", cursor: str | None = None, limit: int = 100,
             include_total: bool = False) -> Page:
        with self.db.read() as conn:
            visible = self.visible_rows(conn, principal)
            if owner == "self":
                visible = [f for f in visible if f.row.owner_id == principal.user_id]
            elif owner != "all":
                owner_id = conn.execute(sa.select(users.c.id).where(
                    users.c.workspace_id == principal.workspace_id, users.c.username == owner,
                    users.c.deleted_at.is_(None))).scalar()
                visible = [f for f in visible if f.row.owner_id == owner_id]
            ids = [f.row.id for f in visible]
            query = sa.select(namespaces).where(namespaces.c.id.in_(ids))
            rows, nxt, total = paginate(conn, query, sort_col=namespaces.c.name, id_col=namespaces.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
            by_id = {f.row.id: f for f in visible}
            return Page([self._view(conn, principal, by_id[r.id]) for r in rows], nxt, total)

    def get(self, principal: Principal, name: str) -> dict[str, Any]:
        with self.db.read() as conn:
            return self._view(conn, principal, self.access(conn, principal, name))

    def update(self, principal: Principal, name: str, *, new_name: str | None = None,
               private: bool | None = None, description: str | None = None,
               field_definitions: dict[str, str] | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        with self.db.write() as conn:
            wanted = "owner" if new_name is not None or private is not None else "write"
            found = self.require(conn, principal, name, wanted)
            if new_name is not None and new_name != name:
                check_data_name(new_name, "namespace")
                taken = conn.execute(sa.select(namespaces.c.id).where(
                    namespaces.c.workspace_id == principal.workspace_id, same_name(namespaces.c.name, new_name),
                    namespaces.c.id != found.row.id)).first()
                if taken:
                    raise Conflict(f"namespace {new_name!r} already exists", code="namespace_exists",
                                   details={"namespace": new_name})
                values["name"] = new_name
            if private is not None:
                values["private"] = bool(private)
            if description is not None:
                values["description"] = description
            if field_definitions is not None:
                values["field_definitions"] = check_definitions(field_definitions)
            if values:
                values["updated_at"] = self.clock()
                conn.execute(namespaces.update().where(namespaces.c.id == found.row.id).values(**values))
            return self._view(conn, principal, self.access(conn, principal, values.get("name", name)))

    def delete(self, principal: Principal, name: str, *, force: bool = False) -> None:
        with self.db.write() as conn:
            found = self.require(conn, principal, name, "owner")
            count = conn.execute(sa.select(sa.func.count()).select_from(datasets).where(
                datasets.c.namespace_id == found.row.id)).scalar_one()
            if count and not force:
                raise Conflict(f"namespace {name!r} holds {count} dataset(s); delete them first or pass force=true",
                               code="namespace_not_empty", details={"namespace": name, "datasets": count})
            self.on_delete(conn, found.row.id)
            conn.execute(namespace_members.delete().where(namespace_members.c.namespace_id == found.row.id))
            conn.execute(namespaces.delete().where(namespaces.c.id == found.row.id))

    # -- members -------------------------------------------------------------------------
    def members(self, principal: Principal, name: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            found = self.access(conn, principal, name)
            rows = conn.execute(sa.select(users.c.username, namespace_members.c.access,
                                          namespace_members.c.created_at).select_from(
                namespace_members.join(users, users.c.id == namespace_members.c.user_id)).where(
                namespace_members.c.namespace_id == found.row.id, users.c.deleted_at.is_(None))
                .order_by(users.c.username)).all()
        return [{"object": "namespace_member", "username": r.username, "access": r.access,
                 "created_at": rfc3339(r.created_at)} for r in rows]

    def set_member(self, principal: Principal, name: str, *, username: str, access: str) -> dict[str, Any]:
        if access not in ("read", "write"):
            raise ValidationFailed("access must be read or write", details={"field": "access"})
        with self.db.write() as conn:
            found = self.require(conn, principal, name, "owner")
            user = conn.execute(sa.select(users.c.id).where(
                users.c.workspace_id == principal.workspace_id, users.c.username == username,
                users.c.deleted_at.is_(None))).first()
            if user is None:
                raise NotFound(f"user {username!r} not found", code="user_not_found", details={"field": "username"})
            conn.execute(namespace_members.delete().where(namespace_members.c.namespace_id == found.row.id,
                                                          namespace_members.c.user_id == user.id))
            now = self.clock()
            conn.execute(namespace_members.insert().values(namespace_id=found.row.id, user_id=user.id,
                                                           access=access, created_at=now))
        return {"object": "namespace_member", "username": username, "access": access, "created_at": rfc3339(now)}

    def remove_member(self, principal: Principal, name: str, username: str) -> None:
        with self.db.write() as conn:
            found = self.require(conn, principal, name, "owner")
            user_id = conn.execute(sa.select(users.c.id).where(
                users.c.workspace_id == principal.workspace_id, users.c.username == username)).scalar()
            result = conn.execute(namespace_members.delete().where(
                namespace_members.c.namespace_id == found.row.id, namespace_members.c.user_id == (user_id or "")))
            if not result.rowcount:
                raise NotFound(f"{username!r} is not a member of {name!r}", code="member_not_found")


def check_definitions(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValidationFailed("field_definitions must map field names to text",
                               details={"field": "field_definitions"})
    return dict(raw)

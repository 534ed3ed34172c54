"""Users of a workspace: a role that caps their tokens' roles, an optional password.

Every token belongs to a user; the bootstrap admin key belongs to user ``admin``. Passwords
are argon2id hashes; repeated failed sign-ins lock the user out for a growing while.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from runyard.ids import looks_like_id, new_id
from runyard.services.access import ROLES, Permission, Principal, rank
from runyard.services.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from runyard.services.pagination import Page, paginate
from runyard.store.db import Database
from runyard.store.tables import tokens
from runyard.store.tables_data import namespaces, users
from runyard.timeutil import as_utc, rfc3339, utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
MANAGE_USERS = Permission("admin", "manage users", unrestricted=True)
LOGIN_FREE_FAILURES = 5  # failures before a lock-out
LOGIN_MAX_LOCK_S = 900.0
_hasher = PasswordHasher()


def user_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {"id": m["id"], "object": "user", "username": m["username"], "role": m["role"],
            "display_name": m["display_name"], "email": m["email"],
            "has_password": m["password_hash"] is not None,
            "created_at": rfc3339(m["created_at"]), "updated_at": rfc3339(m["updated_at"])}


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or len(password) > 1024:
        raise ValidationFailed(f"password must be {MIN_PASSWORD}-1024 characters", code="weak_password",
                               details={"field": "password"})
    return _hasher.hash(password)


class UserService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        # Called with a user's id once their role changed or they were deleted (the token
        # service drops the principals it cached for them).
        self.on_change: Callable[[str], None] = lambda user_id: None

    # -- bootstrap ---------------------------------------------------------------------
    def ensure_admin(self, workspace_id: str) -> str:
        """The id of user ``admin`` (made on first start); tokens with no user become its."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(users.c.id).where(
                users.c.workspace_id == workspace_id, users.c.username == "admin",
                users.c.deleted_at.is_(None))).first()
            if row is None:
                user_id = new_id("usr")
                now = self.clock()
                conn.execute(users.insert().values(
                    id=user_id, workspace_id=workspace_id, username="admin", role="admin", failed_logins=0,
                    created_at=now, updated_at=now))
            else:
                user_id = row.id
            conn.execute(tokens.update().where(tokens.c.workspace_id == workspace_id,
                                               tokens.c.user_id.is_(None)).values(user_id=user_id))
        return user_id

    # -- reads -------------------------------------------------------------------------
    def _row(self, conn: sa.Connection, workspace_id: str, username: str) -> Any:
        row = conn.execute(sa.select(users).where(
            users.c.workspace_id == workspace_id, users.c.username == username,
            users.c.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound(f"user {username!r} not found", code="user_not_found", details={"user": username})
        return row

    def by_id(self, conn: sa.Connection, workspace_id: str, user_id: str) -> Any:
        return conn.execute(sa.select(users).where(users.c.workspace_id == workspace_id, users.c.id == user_id,
                                                   users.c.deleted_at.is_(None))).first()

    def acting_as(self, workspace_id: str, user_id: str | None, *, on_behalf_of: str, whose: str
                  ) -> Principal | str:
        """The principal a trigger or a workflow run acts as: its user with their role now
        (``on_behalf_of``, the trigger's or run's id, stands for the key), or why it cannot act
        (``whose``: "the schedule's owner", …)."""
        user = None
        if user_id:
            with self.db.read() as conn:
                user = self.by_id(conn, workspace_id, user_id)
        if user is None:
            return f"{whose} no longer exists"
        if rank(user.role) < rank("member"):
            return f"{whose} {user.username!r} no longer has the member role"
        return Principal(token_id=on_behalf_of, workspace_id=workspace_id, role=user.role, user_id=user.id,
                         username=user.username)

    def lookup(self, workspace_id: str, username: str) -> Any:
        with self.db.read() as conn:
            return self._row(conn, workspace_id, username)

    def me(self, principal: Principal) -> dict[str, Any]:
        """Who a key is: its user, the token's own id and role, and its restrictions."""
        with self.db.read() as conn:
            row = self.by_id(conn, principal.workspace_id, principal.user_id or "")
        view = user_view(row) if row is not None else {"username": None}
        return {**view, "object": "me", "token_id": principal.token_id, "token_role": principal.role,
                "restricted": principal.restricted}

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        MANAGE_USERS.check(principal)
        query = sa.select(users).where(users.c.workspace_id == principal.workspace_id, users.c.deleted_at.is_(None))
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=users.c.username, id_col=users.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
        return Page([user_view(r) for r in rows], nxt, total)

    def get(self, principal: Principal, username: str) -> dict[str, Any]:
        """A user: admins see everyone, others only themselves (anyone else is 404)."""
        with self.db.read() as conn:
            row = self._row(conn, principal.workspace_id, username)
        if row.id != principal.user_id and not MANAGE_USERS.allows(principal):
            raise NotFound(f"user {username!r} not found", code="user_not_found", details={"user": username})
        return user_view(row)

    # -- writes ------------------------------------------------------------------------
    def create(self, principal: Principal, *, username: str, role: str = "member", password: str | None = None,
               display_name: str | None = None, email: str | None = None) -> dict[str, Any]:
        MANAGE_USERS.check(principal)
        if not isinstance(username, str) or not USERNAME_RE.match(username) or looks_like_id(username):
            raise ValidationFailed("username must be 1-64 lowercase letters, digits, '.', '-' or '_' and "
                                   "not start like an id", code="invalid_username", details={"field": "username"})
        if role not in ROLES:
            raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
        password_hash = _check_password(password) if password is not None else None
        now = self.clock()
        row = {"id": new_id("usr"), "workspace_id": principal.workspace_id, "username": username, "role": role,
               "display_name": display_name, "email": email, "password_hash": password_hash,
               "failed_logins": 0, "created_at": now, "updated_at": now}
        with self.db.write() as conn:
            exists = conn.execute(sa.select(users.c.id).where(
                users.c.workspace_id == principal.workspace_id, users.c.username == username,
                users.c.deleted_at.is_(None))).first()
            if exists:
                raise Conflict(f"user {username!r} already exists", code="user_exists", details={"user": username})
            conn.execute(users.insert().values(**row))
            return user_view(conn.execute(sa.select(users).where(users.c.id == row["id"])).one())

    def update(self, principal: Principal, username: str, *, role: str | None = None,
               password: str | None = None, display_name: str | None = None,
               email: str | None = None) -> dict[str, Any]:
        """Admins change anyone; a user changes their own password, name and email (not role)."""
        with self.db.write() as conn:
            row = self._row(conn, principal.workspace_id, username)
            is_admin = MANAGE_USERS.allows(principal)
            if row.id != principal.user_id and not is_admin:
                raise NotFound(f"user {username!r} not found", code="user_not_found", details={"user": username})
            if not is_admin:
                # One's own account: only with a key that is the whole user. A narrower key
                # (a lower role, restrictions) setting the password could sign in as the
                # whole user, and so outgrow itself.
                if principal.restricted:
                    raise PermissionDenied("a restricted key cannot change its user's account", code="restricted")
                if principal.role != row.role:
                    raise PermissionDenied(f"changing a {row.role} user's account takes a {row.role} key",
                                           code="insufficient_role", details={"required_role": row.role})
            values: dict[str, Any] = {}
            if role is not None:
                MANAGE_USERS.check(principal)
                if role not in ROLES:
                    raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", details={"field": "role"})
                if row.role == "admin" and role != "admin":
                    self._keep_an_admin(conn, principal.workspace_id, row.id)
                values["role"] = role
            if password is not None:
                values.update(password_hash=_check_password(password), failed_logins=0, locked_until=None)
            if display_name is not None:
                values["display_name"] = display_name
            if email is not None:
                values["email"] = email
            if values:
                values["updated_at"] = self.clock()
                conn.execute(users.update().where(users.c.id == row.id).values(**values))
            updated = user_view(conn.execute(sa.select(users).where(users.c.id == row.id)).one())
        self.on_change(row.id)
        return updated

    def _keep_an_admin(self, conn: sa.Connection, workspace_id: str, leaving_id: str) -> None:
        others = conn.execute(sa.select(sa.func.count()).select_from(users).where(
            users.c.workspace_id == workspace_id, users.c.role == "admin", users.c.deleted_at.is_(None),
            users.c.id != leaving_id)).scalar_one()
        if not others:
            raise Conflict("the workspace's last admin cannot be removed or demoted", code="last_admin")

    def delete(self, principal: Principal, username: str) -> None:
        """Remove a user: their tokens are revoked, their namespaces pass to the acting admin."""
        MANAGE_USERS.check(principal)
        now = self.clock()
        with self.db.write() as conn:
            row = self._row(conn, principal.workspace_id, username)
            if row.role == "admin":
                self._keep_an_admin(conn, principal.workspace_id, row.id)
            conn.execute(users.update().where(users.c.id == row.id).values(deleted_at=now, updated_at=now))
            conn.execute(tokens.update().where(tokens.c.user_id == row.id, tokens.c.deleted_at.is_(None))
                         .values(deleted_at=now))
            conn.execute(namespaces.update().where(namespaces.c.owner_id == row.id)
                         .values(owner_id=principal.user_id, updated_at=now))
        self.on_change(row.id)

    # -- sign-in -----------------------------------------------------------------------
    def verify_password(self, workspace_id: str, username: str, password: str) -> Any:
        """The user row if ``password`` is theirs. Failures count; past a few, the user is
        locked out for a doubling while (429 ``login_throttled``), wrong password or not."""
        now = self.clock()
        with self.db.write() as conn:
            row = conn.execute(sa.select(users).where(
                users.c.workspace_id == workspace_id, users.c.username == username,
                users.c.deleted_at.is_(None))).first()
            if row is None or row.password_hash is None:
                _hasher.hash("spend the same time as a real check")
                raise Unauthenticated("wrong username or password", code="invalid_credentials")
            locked = as_utc(row.locked_until)
            if locked is not None and locked > now:
                wait = (locked - now).total_seconds()
                raise RateLimited(f"too many failed sign-ins; try again in {wait:.0f} s", code="login_throttled",
                                  retry_after=wait)
            try:
                _hasher.verify(row.password_hash, password)
            except (VerificationError, InvalidHashError):
                failures = row.failed_logins + 1
                lock = None
                if failures >= LOGIN_FREE_FAILURES:
                    seconds = min(LOGIN_MAX_LOCK_S, 2.0 ** (failures - LOGIN_FREE_FAILURES))
                    lock = now + timedelta(seconds=seconds)
                conn.execute(users.update().where(users.c.id == row.id).values(failed_logins=failures,
                                                                               locked_until=lock))
                raise Unauthenticated("wrong username or password", code="invalid_credentials") from None
            values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
            if _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            conn.execute(users.update().where(users.c.id == row.id).values(**values))
            return row


def cap_role(token_role: str, user_role: str) -> str:
    """A token acts with the lower of its own role and its user's current role."""
    return token_role if rank(token_role) <= rank(user_role) else user_role

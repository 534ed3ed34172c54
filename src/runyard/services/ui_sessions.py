"""Web UI sessions: a browser signed in with an API key or a user's password.

A session acts as exactly one token, so the UI can do no more than that key can through the
API: a key sign-in acts as the key itself; a password sign-in makes a key of the user's role
(as ``POST /auth/login`` does) and signing out revokes it. The browser holds a random cookie
value; the database holds only its hash. A session ends on sign-out, after ``idle`` without a
request, ``absolute`` after sign-in, or as soon as its key is revoked or its user deleted.

The CSRF token of a session is derived from the cookie value (an HMAC), so a page can show
it without the server storing it, and a token from any other session (an older sign-in in the
same browser: a stale page) does not match.

Sign-in failures are counted per (client address, account): past ``FREE_FAILURES`` that pair
waits a doubling while (429 ``ui_sign_in_throttled``), on top of the per-user lock-out that
password checks already have.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Principal
from runyard.services.errors import RateLimited, Unauthenticated
from runyard.services.tokens import TokenService
from runyard.store.db import Database
from runyard.store.tables_ui import ui_sessions, ui_sign_in_failures
from runyard.timeutil import as_utc, utcnow

FREE_FAILURES = 5
MAX_LOCK_S = 900.0
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token_of(cookie: str) -> str:
    """The CSRF token of the session whose cookie is ``cookie``."""
    return hmac.new(cookie.encode(), b"runyard-ui-csrf", hashlib.sha256).hexdigest()


def csrf_matches(cookie: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token_of(cookie), sent or "")


@dataclass(frozen=True)
class UiSession:
    """A live session: who it acts as, and the values the browser needs."""

    id: str
    principal: Principal
    csrf_token: str


@dataclass(frozen=True)
class SignedIn:
    cookie: str
    session: UiSession


class UiSessionService:
    def __init__(self, db: Database, tokens: TokenService, *, idle: timedelta, absolute: timedelta,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.tokens = tokens
        self.idle = idle
        self.absolute = absolute
        self.clock = clock

    # -- sign-in -------------------------------------------------------------------------------
    def sign_in_with_key(self, key: str, *, client_ip: str, user_agent: str) -> SignedIn:
        """A session acting as API key ``key``."""
        subject = f"key:{key[:10]}"
        self._check_throttle(client_ip, subject)
        try:
            principal = self.tokens.authenticate(key.strip() or None)
        except Unauthenticated:
            self._fail(client_ip, subject)
            raise
        self._clear(client_ip, subject)
        return self._start(principal, owns_token=False, client_ip=client_ip, user_agent=user_agent)

    def sign_in_with_password(self, workspace_id: str, username: str, password: str, *, client_ip: str,
                              user_agent: str) -> SignedIn:
        """A session acting as a new key of the user (``tokens.session``: their role, 12 hours)."""
        subject = f"user:{username}"
        self._check_throttle(client_ip, subject)
        try:
            token = self.tokens.session(workspace_id, username, password, label="web UI sign-in")
        except Unauthenticated:
            self._fail(client_ip, subject)
            raise
        self._clear(client_ip, subject)
        principal = self.tokens.principal_of_token(workspace_id, token["id"])
        return self._start(principal, owns_token=True, client_ip=client_ip, user_agent=user_agent)

    def _start(self, principal: Principal, *, owns_token: bool, client_ip: str, user_agent: str) -> SignedIn:
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.absolute
        if principal.expires_at is not None:
            expires = min(expires, principal.expires_at)
        session_id = new_id("uis")
        with self.db.write() as conn:
            conn.execute(ui_sessions.insert().values(
                id=session_id, workspace_id=principal.workspace_id, cookie_hash=_digest(cookie),
                token_id=principal.token_id, user_id=principal.user_id, owns_token=owns_token, created_at=now,
                last_seen_at=now, expires_at=expires, client_ip=client_ip[:64], user_agent=user_agent[:200]))
        return SignedIn(cookie, UiSession(session_id, principal, csrf_token_of(cookie)))

    # -- each request --------------------------------------------------------------------------
    def resolve(self, cookie: str | None) -> UiSession:
        """The live session of ``cookie``: 401 ``ui_session_required`` without one,
        ``ui_session_expired`` once it timed out, ended, or its key or user went away."""
        if not cookie:
            raise Unauthenticated("sign in to use the web UI", code="ui_session_required")
        now = self.clock()
        with self.db.read() as conn:
            row = conn.execute(sa.select(ui_sessions).where(ui_sessions.c.cookie_hash == _digest(cookie))).first()
        if row is None or row.ended_at is not None:
            raise Unauthenticated("your session has ended; sign in again", code="ui_session_expired")
        last_seen = as_utc(row.last_seen_at)
        if as_utc(row.expires_at) <= now or last_seen + self.idle <= now:  # type: ignore[operator]
            self._end(row.id, now)
            raise Unauthenticated("your session has expired; sign in again", code="ui_session_expired")
        try:
            principal = self.tokens.principal_of_token(row.workspace_id, row.token_id)
        except Unauthenticated:
            self._end(row.id, now)
            raise Unauthenticated("your session's key was revoked or expired; sign in again",
                                  code="ui_session_expired") from None
        if now - last_seen >= TOUCH_EVERY:  # type: ignore[operator]
            with self.db.write() as conn:
                conn.execute(ui_sessions.update().where(ui_sessions.c.id == row.id).values(last_seen_at=now))
        return UiSession(row.id, principal, csrf_token_of(cookie))

    def sign_out(self, cookie: str | None) -> None:
        """End the cookie's session (and revoke the key a password sign-in made); no session: nothing."""
        if not cookie:
            return
        now = self.clock()
        with self.db.write() as conn:
            row = conn.execute(sa.select(ui_sessions).where(ui_sessions.c.cookie_hash == _digest(cookie))).first()
            if row is None or row.ended_at is not None:
                return
            conn.execute(ui_sessions.update().where(ui_sessions.c.id == row.id).values(ended_at=now))
        if row.owns_token:
            self.tokens.revoke_session_key(row.workspace_id, row.token_id)

    def _end(self, session_id: str, now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(ui_sessions.update().where(ui_sessions.c.id == session_id,
                                                    ui_sessions.c.ended_at.is_(None)).values(ended_at=now))

    # -- throttling ----------------------------------------------------------------------------
    @staticmethod
    def _subject(client_ip: str, account: str) -> str:
        return _digest(f"{client_ip}\0{account}")

    def _check_throttle(self, client_ip: str, account: str) -> None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(ui_sign_in_failures).where(
                ui_sign_in_failures.c.subject_hash == self._subject(client_ip, account))).first()
        locked = as_utc(row.locked_until) if row is not None else None
        now = self.clock()
        if locked is not None and locked > now:
            wait = (locked - now).total_seconds()
            raise RateLimited(f"too many failed sign-ins from this address; try again in {wait:.0f} s",
                              code="ui_sign_in_throttled", retry_after=wait)

    def _fail(self, client_ip: str, account: str) -> None:
        subject, now = self._subject(client_ip, account), self.clock()
        with self.db.write() as conn:
            row = conn.execute(sa.select(ui_sign_in_failures).where(
                ui_sign_in_failures.c.subject_hash == subject)).first()
            failures = (row.failures if row is not None else 0) + 1
            lock = None
            if failures >= FREE_FAILURES:
                lock = now + timedelta(seconds=min(MAX_LOCK_S, 2.0 ** (failures - FREE_FAILURES)))
            values: dict[str, Any] = {"failures": failures, "last_failure_at": now, "locked_until": lock}
            if row is None:
                conn.execute(ui_sign_in_failures.insert().values(subject_hash=subject, **values))
            else:
                conn.execute(ui_sign_in_failures.update().where(
                    ui_sign_in_failures.c.subject_hash == subject).values(**values))

    def _clear(self, client_ip: str, account: str) -> None:
        with self.db.write() as conn:
            conn.execute(ui_sign_in_failures.delete().where(
                ui_sign_in_failures.c.subject_hash == self._subject(client_ip, account)))

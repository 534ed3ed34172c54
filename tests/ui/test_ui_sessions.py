"""services/ui_sessions.py on a real database with a clock of the test's own: idle and absolute
timeouts, sign-out (revoking the key a password sign-in made), throttling per address and
account. Over HTTP the same rules are checked by test_ui_security.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from runyard.config import normalise_database_url
from runyard.services.errors import RateLimited, Unauthenticated
from runyard.services.tokens import TokenService
from runyard.services.ui_sessions import FREE_FAILURES, UiSessionService, csrf_matches
from runyard.services.users import UserService
from runyard.store.db import Database
from runyard.store.migrate import upgrade
from runyard.timeutil import utcnow
from tests.support.servers import PgDatabase

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=8)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    sessions: UiSessionService
    tokens: TokenService
    users: UserService
    clock: Clock
    workspace_id: str
    key: str


@pytest.fixture
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    pg = PgDatabase.create() if backend == "postgres" else None
    url = normalise_database_url(pg.url) if pg else f"sqlite:///{tmp_path / 'ui.db'}"
    db = Database(url)
    upgrade(db.engine)
    clock = Clock()
    users = UserService(db, clock=clock)
    tokens = TokenService(db, users, clock=clock)
    workspace_id = "ws_uitest"
    admin = users.ensure_admin(workspace_id)
    key = "ry_ui_" + "k" * 30
    tokens.ensure_bootstrap(workspace_id, key, admin)
    try:
        yield World(UiSessionService(db, tokens, idle=IDLE, absolute=ABSOLUTE, clock=clock), tokens, users, clock,
                    workspace_id, key)
    finally:
        db.engine.dispose()
        if pg:
            pg.drop()


def _expired(world: World, cookie: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        world.sessions.resolve(cookie)
    assert caught.value.code == "ui_session_expired"


def test_a_session_ends_after_its_idle_time(world: World) -> None:
    signed = world.sessions.sign_in_with_key(world.key, client_ip="10.0.0.1", user_agent="t")
    world.clock.now += IDLE - timedelta(minutes=1)
    assert world.sessions.resolve(signed.cookie).principal.role == "admin"  # a request: idle from now
    world.clock.now += IDLE - timedelta(minutes=1)
    world.sessions.resolve(signed.cookie)
    world.clock.now += IDLE + timedelta(seconds=1)
    _expired(world, signed.cookie)
    world.clock.now += timedelta(seconds=1)
    _expired(world, signed.cookie)  # ended for good


def test_a_session_ends_at_its_absolute_limit_however_busy(world: World) -> None:
    started = world.clock.now
    signed = world.sessions.sign_in_with_key(world.key, client_ip="10.0.0.1", user_agent="t")
    while world.clock.now + IDLE / 2 < started + ABSOLUTE:
        world.clock.now += IDLE / 2  # never idle for long
        world.sessions.resolve(signed.cookie)
    world.clock.now += IDLE / 2
    _expired(world, signed.cookie)


def test_no_cookie_or_an_unknown_one(world: World) -> None:
    with pytest.raises(Unauthenticated) as caught:
        world.sessions.resolve(None)
    assert caught.value.code == "ui_session_required"
    _expired(world, "not-a-session")


def test_the_csrf_token_belongs_to_one_session(world: World) -> None:
    first = world.sessions.sign_in_with_key(world.key, client_ip="10.0.0.1", user_agent="t")
    second = world.sessions.sign_in_with_key(world.key, client_ip="10.0.0.1", user_agent="t")
    assert first.session.id != second.session.id and first.cookie != second.cookie
    assert csrf_matches(second.cookie, second.session.csrf_token)
    assert not csrf_matches(second.cookie, first.session.csrf_token)
    assert not csrf_matches(second.cookie, None) and not csrf_matches(second.cookie, "")


def test_password_sessions_revoke_their_key_at_sign_out(world: World) -> None:
    admin = world.tokens.authenticate(world.key)
    world.users.create(admin, username="alice", role="viewer", password="alice-password")
    signed = world.sessions.sign_in_with_password(world.workspace_id, "alice", "alice-password",
                                                  client_ip="10.0.0.2", user_agent="t")
    assert signed.session.principal.role == "viewer" and signed.session.principal.username == "alice"
    world.sessions.sign_out(signed.cookie)
    _expired(world, signed.cookie)
    with pytest.raises(Unauthenticated):
        world.tokens.principal_of_token(world.workspace_id, signed.session.principal.token_id)


def test_a_deleted_user_ends_their_sessions(world: World) -> None:
    admin = world.tokens.authenticate(world.key)
    world.users.create(admin, username="bob", role="member", password="bob-password")
    signed = world.sessions.sign_in_with_password(world.workspace_id, "bob", "bob-password",
                                                  client_ip="10.0.0.3", user_agent="t")
    world.users.delete(admin, "bob")
    _expired(world, signed.cookie)


def test_failures_are_throttled_per_address_and_account(world: World) -> None:
    for _ in range(FREE_FAILURES):
        with pytest.raises(Unauthenticated):
            world.sessions.sign_in_with_key("ry_wrong_key_xxxxxxxx", client_ip="10.0.0.9", user_agent="t")
    with pytest.raises(RateLimited) as caught:
        world.sessions.sign_in_with_key("ry_wrong_key_xxxxxxxx", client_ip="10.0.0.9", user_agent="t")
    assert caught.value.code == "ui_sign_in_throttled" and caught.value.retry_after > 0
    # the right key of another account, and the same account from another address, are not held up
    world.sessions.sign_in_with_key(world.key, client_ip="10.0.0.9", user_agent="t")
    with pytest.raises(Unauthenticated):
        world.sessions.sign_in_with_key("ry_wrong_key_xxxxxxxx", client_ip="10.0.0.10", user_agent="t")
    # the lock passes with time
    world.clock.now += timedelta(seconds=2)
    with pytest.raises(Unauthenticated):
        world.sessions.sign_in_with_key("ry_wrong_key_xxxxxxxx", client_ip="10.0.0.9", user_agent="t")

"""Services called in-process, without HTTP: what they decide does not depend on the
front end. Token expiry and the rate limiter run on injected clocks (no sleeping), and
the services refuse a principal themselves, whoever calls them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runyard.services.access import SEE_NODE_PROTECTIONS, Permission, Principal
from runyard.services.errors import NotFound, PermissionDenied, RateLimited, Unauthenticated, ValidationFailed
from runyard.services.ratelimit import RateLimiter
from runyard.services.synth_sets import SetService
from runyard.services.templates import TemplateService
from runyard.services.tokens import TokenService
from runyard.services.users import UserService
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.migrate import upgrade

WS = "ws_inprocess"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'runyard.db'}")
    upgrade(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def principal(role: str = "admin", tools: frozenset[str] = frozenset(), expires_at: datetime | None = None,
              user_id: str | None = None) -> Principal:
    return Principal(token_id="tok_test", workspace_id=WS, role=role, tools=tools,  # type: ignore[arg-type]
                     expires_at=expires_at, user_id=user_id)


def token_service(db: Database, clock: Clock, **kwargs: object) -> tuple[TokenService, str]:
    """The token service and the id of user ``admin``, whose keys the tests make."""
    users = UserService(db, clock=clock)
    return TokenService(db, users, clock=clock, **kwargs), users.ensure_admin(WS)  # type: ignore[arg-type]


# -- token expiry on an injected clock --------------------------------------------------------
def test_a_key_expires_when_the_clock_passes_its_expiry(db: Database) -> None:
    clock = Clock(T0)
    monotonic = Clock(T0)  # the key cache's clock: held still, so the cache stays warm throughout
    service, admin = token_service(db, clock, monotonic=lambda: monotonic.now.timestamp())
    created = service.create(principal(user_id=admin), name="short-lived", role="member", expires_at=T0 + timedelta(minutes=5))
    key = created["key"]

    assert service.authenticate(key).role == "member"
    assert service.authenticate_cached(key) is not None  # cached, and not expired yet
    clock.advance(minutes=4, seconds=59)
    assert service.authenticate(key).token_id == created["id"]

    clock.advance(seconds=1)  # exactly at expires_at: no longer valid
    assert service.authenticate_cached(key) is None  # the cache does not outlive the key
    with pytest.raises(Unauthenticated) as refused:
        service.authenticate(key)
    assert refused.value.code == "expired_api_key" and refused.value.status == 401

    # Read afresh from the database once the cache period is over: still expired.
    monotonic.advance(minutes=1)
    with pytest.raises(Unauthenticated) as refused:
        service.authenticate(key)
    assert refused.value.code == "expired_api_key"


def test_expiry_is_judged_against_the_injected_clock(db: Database) -> None:
    clock = Clock(T0)
    service, admin = token_service(db, clock)
    with pytest.raises(ValidationFailed) as refused:  # in the past by the service's clock, not the machine's
        service.create(principal(user_id=admin), name="stale", role="viewer", expires_at=T0 - timedelta(seconds=1))
    assert refused.value.details == {"field": "expires_at"}
    created = service.create(principal(user_id=admin), name="fresh", role="viewer", expires_at=T0 + timedelta(seconds=1))
    assert created["created_at"].startswith("2030-01-01T12:00:00")
    clock.advance(days=1)
    with pytest.raises(Unauthenticated):
        service.authenticate(created["key"])


def test_a_key_that_expires_mints_no_key_that_outlives_it(db: Database) -> None:
    service, admin = token_service(db, Clock(T0))
    expiring = principal(expires_at=T0 + timedelta(hours=1), user_id=admin)
    with pytest.raises(PermissionDenied) as refused:
        service.create(expiring, name="forever", role="viewer")
    assert refused.value.code == "token_escalation"
    assert service.create(expiring, name="ok", role="viewer", expires_at=T0 + timedelta(minutes=30))["key"]


# -- the rate limiter on an injected clock -----------------------------------------------------
def test_rate_limit_window_on_an_injected_clock() -> None:
    now = [120.0 + 15]  # 15 s into a one-minute window
    limiter = RateLimiter(2, clock=lambda: now[0])
    first = limiter.hit(WS)
    assert (first.limit, first.remaining, first.reset_s) == (2, 1, 45.0)
    assert limiter.hit(WS).remaining == 0
    with pytest.raises(RateLimited) as refused:
        limiter.hit(WS)
    assert refused.value.code == "rate_limited" and refused.value.status == 429
    assert refused.value.retry_after == 45
    assert limiter.hit("another workspace").remaining == 1  # counted per workspace

    now[0] = 179.5  # still the same window
    with pytest.raises(RateLimited) as refused:
        limiter.hit(WS)
    assert refused.value.retry_after == 1  # whole seconds, rounded up
    now[0] = 180.0  # the next window: counting starts again
    fresh = limiter.hit(WS)
    assert (fresh.remaining, fresh.reset_s) == (1, 60.0)


# -- services authorize whoever calls them ----------------------------------------------------
def test_permissions() -> None:
    writes = Permission("member", "write things")
    assert not writes.allows(principal("viewer")) and writes.allows(principal("member"))
    assert writes.allows(principal("admin", tools=frozenset({"a"})))
    with pytest.raises(PermissionDenied) as refused:
        writes.check(principal("viewer"))
    assert refused.value.code == "insufficient_role" and refused.value.details == {"required_role": "member"}
    assert "a viewer token cannot write things" in refused.value.message
    # The node's protections: an unrestricted admin's only.
    assert SEE_NODE_PROTECTIONS.allows(principal("admin"))
    assert not SEE_NODE_PROTECTIONS.allows(principal("admin", tools=frozenset({"a"})))
    assert not SEE_NODE_PROTECTIONS.allows(principal("member"))
    with pytest.raises(PermissionDenied) as refused:
        SEE_NODE_PROTECTIONS.check(principal("admin", tools=frozenset({"a"})))
    assert refused.value.code == "restricted"


def test_token_service_authorizes_each_caller_itself(db: Database) -> None:
    service, admin = token_service(db, Clock(T0))
    made = service.create(principal(user_id=admin), name="x", role="viewer")
    viewer = principal("viewer", user_id=admin)
    for call in (lambda: service.create(viewer, name="y", role="viewer"),
                 lambda: service.list(viewer, cursor=None, limit=10),
                 lambda: service.get(viewer, made["id"]),
                 lambda: service.delete(viewer, made["id"])):
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.code == "insufficient_role"
    # A member manages its own user's keys only: another user's key is not there for it.
    member_user = UserService(db, clock=Clock(T0)).create(principal(user_id=admin), username="mem", role="member")
    member = principal("member", user_id=member_user["id"])
    own = service.create(member, name="mine", role="member")
    assert [t["id"] for t in service.list(member, cursor=None, limit=10).items] == [own["id"]]
    with pytest.raises(NotFound):
        service.get(member, made["id"])
    with pytest.raises(PermissionDenied) as refused:
        service.create(member, name="up", role="admin")
    assert refused.value.code == "token_escalation"
    assert service.get(principal(user_id=admin), made["id"])["name"] == "x"  # nothing was deleted


def test_template_and_set_services_check_the_role_themselves(db: Database, tmp_path: Path) -> None:
    sets = SetService(db, BlobStore(tmp_path / "blobs"))
    templates = TemplateService(db, sets)
    viewer, member = principal("viewer"), principal("member")
    document = {"name": "people", "fields": [{"name": "id", "generator": "sequence", "start": 1}]}

    with pytest.raises(PermissionDenied):
        templates.create(viewer, document)
    made = templates.create(member, document)
    with pytest.raises(PermissionDenied):
        sets.save_rows(viewer, "numbers", [{"a": 1}])
    sets.save_rows(member, "numbers", [{"a": 1}, {"a": 2}])

    # A viewer reads and previews ...
    assert templates.get(viewer, made["id"])["name"] == "people"
    assert [r["id"] for r in templates.preview(viewer, made["id"], {"seed": 1})["rows"]][:2] == [1, 2]
    assert sets.load(viewer, "numbers")["rows"] == [{"a": 1}, {"a": 2}]
    assert [s["name"] for s in sets.list(viewer, cursor=None, limit=10).items] == ["numbers"]
    # ... and changes nothing: each refusal comes from the service, before any work.
    for call in (lambda: templates.update(viewer, made["id"], {"description": "x"}),
                 lambda: templates.delete(viewer, made["id"]),
                 lambda: templates.prepare(viewer, made["id"], {"count": 1}, fmt="json"),
                 lambda: templates.generate_into_set(viewer, made["id"], {"count": 1}, "generated"),
                 lambda: sets.delete(viewer, "numbers")):
        with pytest.raises(PermissionDenied) as refused:
            call()
        assert refused.value.code == "insufficient_role"
    assert templates.get(member, made["id"])["version"] == 1
    assert sets.load(member, "numbers")["row_count"] == 2
    templates.delete(member, made["id"])
    sets.delete(member, "numbers")
    assert templates.list(member, cursor=None, limit=10).items == []

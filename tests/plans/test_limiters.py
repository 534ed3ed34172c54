"""The limiter backends on their own: several instances (as several API nodes would hold)
sharing one Redis or one database, counted from threads at once."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from runyard.config import normalise_database_url
from runyard.services import ratelimit
from runyard.services.errors import RateLimited
from runyard.services.ratelimit import LeaseLimiter, Limiter, LocalLimiter, RedisLimiter
from runyard.store.db import Database
from runyard.store.migrate import upgrade
from runyard.store.tables_plans import rate_limit_windows
from tests.support.servers import BACKENDS, PgDatabase, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database (SQLite, and PostgreSQL when RUNYARD_TEST_DATABASE_URL is set)."""
    if request.param == "postgres":
        pg = PgDatabase.create()
        url = normalise_database_url(pg.url)
    else:
        pg, url = None, f"sqlite:///{tmp_path / 'limits.db'}"
    db = Database(url)
    upgrade(db.engine)
    db.dispose()
    try:
        yield url
    finally:
        if pg:
            pg.drop()


def hammer(limiters: list[Limiter], key: str, limit: int, attempts: int, amount: int = 1) -> int:
    """``attempts`` hits spread over one thread per limiter; how many were admitted."""
    admitted = [0] * len(limiters)

    def spend(i: int, limiter: Limiter) -> None:
        for _ in range(attempts // len(limiters)):
            try:
                limiter.hit(key, limit, 3600, amount)
                admitted[i] += 1
            except RateLimited:
                pass

    threads = [threading.Thread(target=spend, args=(i, lim)) for i, lim in enumerate(limiters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(admitted)


def test_two_redis_limiters_admit_exactly_the_limit() -> None:
    prefix = f"runyard:test:{uuid.uuid4().hex}:"
    nodes = [RedisLimiter(REDIS_URL, prefix=prefix), RedisLimiter(REDIS_URL, prefix=prefix)]
    assert hammer(nodes, "req:ws", 600, 1000) == 600
    with pytest.raises(RateLimited) as refused:
        nodes[0].hit("req:ws", 600, 3600)
    assert refused.value.code == "rate_limited" and 1 <= refused.value.retry_after <= 3600
    quota = refused.value.quota  # type: ignore[attr-defined]
    assert (quota.limit, quota.remaining) == (600, 0)
    assert nodes[1].hit("req:other", 600, 3600).remaining == 599  # counted per key
    for node in nodes:
        node.close()


def test_two_lease_limiters_share_the_database(database_url: str) -> None:
    dbs = [Database(database_url), Database(database_url)]  # two nodes: two engines
    nodes = [LeaseLimiter(db) for db in dbs]
    batch = nodes[0].batch(600)
    assert batch == 12
    admitted = hammer(nodes, "req:ws", 600, 1000)
    assert 600 - 2 * batch <= admitted <= 600
    with dbs[0].read() as conn:
        used = conn.execute(sa.select(rate_limit_windows.c.used)).scalar_one()
    assert used <= 600  # the database's count never passes the limit
    for db in dbs:
        db.dispose()


def test_lease_limiter_counts_large_amounts_all_or_nothing(database_url: str) -> None:
    db = Database(database_url)
    a, b = LeaseLimiter(db), LeaseLimiter(db)
    assert a.hit("rows:ws", 10_000, 3600, 9_000).remaining == 1_000
    with pytest.raises(RateLimited):
        b.hit("rows:ws", 10_000, 3600, 2_000)  # does not fit: nothing taken
    assert b.hit("rows:ws", 10_000, 3600, 800).limit == 10_000
    with pytest.raises(RateLimited):
        a.hit("rows:ws", 10_000, 3600, 300)
    a.hit("rows:ws", 10_000, 3600, 200)
    db.dispose()


def test_lease_limiter_starts_again_in_the_next_window(database_url: str) -> None:
    now = [7200.0 + 10]
    db = Database(database_url)
    node = LeaseLimiter(db, clock=lambda: now[0])
    for _ in range(3):
        node.hit("req:ws", 3, 60)
    with pytest.raises(RateLimited) as refused:
        node.hit("req:ws", 3, 60)
    assert refused.value.retry_after == 50
    now[0] += 60
    assert node.hit("req:ws", 3, 60).remaining == 2
    db.dispose()


def test_local_limiter_on_an_injected_clock() -> None:
    now = [120.0 + 15]
    limiter = LocalLimiter(clock=lambda: now[0])
    assert limiter.hit("k", 2, 60).reset_s == 45.0
    limiter.hit("k", 2, 60)
    with pytest.raises(RateLimited):
        limiter.hit("k", 2, 60)
    now[0] = 180.0
    assert limiter.hit("k", 2, 60).remaining == 1


def test_redis_down_fails_open_to_counting_on_this_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable Redis costs one short timeout, then this node counts by itself (the
    API stays usable and still limited per node) and tries Redis again later."""
    node = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", prefix=f"runyard:test:{uuid.uuid4().hex}:")
    started = time.monotonic()
    for _ in range(3):
        node.hit("req:ws", 3, 60)
    with pytest.raises(RateLimited):
        node.hit("req:ws", 3, 60)
    assert node.degraded and time.monotonic() - started < 2
    # Redis comes back: the next try after RETRY_REDIS_S counts there again.
    monkeypatch.setattr(ratelimit, "RETRY_REDIS_S", 0.0)
    node._down_until = 0.0
    node.client = redis.Redis.from_url(REDIS_URL)
    node._script = node.client.register_script(ratelimit._REDIS_HIT)
    assert node.hit("req:ws", 3, 60).remaining == 2 and not node.degraded


class RedisProxy:
    """A TCP relay to the real Redis that the test can take down: what an outage looks like
    from a node (connections cut, new ones refused)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 6379))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def down(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_redis_failing_mid_way_keeps_answering() -> None:
    """Redis that works, then goes away mid-way: hits keep being answered at once, counted
    on this node."""
    proxy = RedisProxy()
    node = RedisLimiter(f"redis://127.0.0.1:{proxy.port}/0", prefix=f"runyard:test:{uuid.uuid4().hex}:")
    assert node.hit("req:ws", 100, 60).remaining == 99
    assert node.hit("req:ws", 100, 60).remaining == 98
    proxy.down()
    started = time.monotonic()
    assert node.hit("req:ws", 100, 60).remaining == 99  # this node's own count from here
    assert node.degraded and time.monotonic() - started < 1

"""``ScheduleService.fire_due`` on two nodes (two platforms on one database, SQLite or
PostgreSQL), with the clock given: each tick starts exactly one run whichever node polls,
missed ticks collapse to ``max_catch_up``, and the overlap policies hold."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runyard.config import Settings
from runyard.services.access import Principal
from runyard.store.tables import runs
from runyard.wiring import Platform
from tests.support.servers import PgDatabase


@pytest.fixture
def nodes(backend: str, tmp_path: Path) -> Iterator[tuple[Platform, Platform]]:
    pg = PgDatabase.create() if backend == "postgres" else None
    url = pg.url if pg else f"sqlite:///{tmp_path / 'shared.db'}"
    a = Platform(Settings(data_dir=tmp_path / "a", database_url=url))
    b = Platform(Settings(data_dir=tmp_path / "b", database_url=url))
    try:
        yield a, b
    finally:
        b.close()
        a.close()
        if pg:
            pg.drop()


def _admin(platform: Platform) -> Principal:
    return Principal(token_id="tok_test", workspace_id=platform.workspace_id, role="admin",
                     user_id=platform.admin_user_id, username="admin")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _both(a: Platform, b: Platform, now: datetime) -> int:
    with ThreadPoolExecutor(2) as pool:
        return sum(pool.map(lambda p: p.schedules.fire_due(now), (a, b)))


def _runs(platform: Platform, tool: str) -> list[Any]:
    with platform.db.read() as conn:
        return conn.execute(sa.select(runs).where(runs.c.tool_name == tool).order_by(runs.c.id)).all()


def test_each_tick_starts_one_run_whichever_node_polls(nodes: tuple[Platform, Platform]) -> None:
    a, b = nodes
    a.tools.deploy(a.workspace_id, name="t", code="def main(x: int = 1):\n    return x\n")
    schedule = a.schedules.create(_admin(a), tool="t", inputs={"x": 3}, interval_s=1, overlap="cancel_previous")
    first = _at(schedule["next_fire_at"])
    for i in range(5):
        now = first + timedelta(seconds=i, milliseconds=100)
        assert _both(a, b, now) == 1, i
        assert _both(a, b, now) == 0, i  # polled again: that tick is done
    made = _runs(a, "t")
    assert len(made) == 5 and {r.trigger for r in made} == {"schedule"} and made[-1].inputs == {"x": 3}
    # started by the schedule, under no token of anyone's
    assert {(r.triggered_by, r.token_id, r.type) for r in made} == {(schedule["id"], None, "tool")}
    assert [r.status for r in made] == ["cancelled"] * 4 + ["queued"]  # cancel_previous
    # after a long pause, one run (max_catch_up 1), not one per missed tick
    assert _both(a, b, first + timedelta(seconds=500)) == 1
    view = b.schedules.get(_admin(b), schedule["id"])
    assert view["last_run_id"] == _runs(a, "t")[-1].id
    assert _at(view["next_fire_at"]) == first + timedelta(seconds=501)


def test_overlap_skip_and_queue(nodes: tuple[Platform, Platform]) -> None:
    a, b = nodes
    a.tools.deploy(a.workspace_id, name="s", code="def main():\n    return 1\n")
    a.tools.deploy(a.workspace_id, name="q", code="def main():\n    return 1\n")
    skip = a.schedules.create(_admin(a), tool="s", interval_s=1, overlap="skip")
    queue = a.schedules.create(_admin(a), tool="q", interval_s=1, overlap="queue")
    start = max(_at(skip["next_fire_at"]), _at(queue["next_fire_at"]))
    assert _both(a, b, start + timedelta(milliseconds=100)) == 2
    # the first runs are still queued (no worker here): skip passes its tick, queue holds it
    assert _both(a, b, start + timedelta(seconds=1, milliseconds=100)) == 0
    assert len(_runs(a, "s")) == 1 and len(_runs(a, "q")) == 1
    held = a.schedules.get(_admin(a), queue["id"])
    assert _at(held["next_fire_at"]) == start + timedelta(seconds=1)  # still due
    a.runs.cancel(_admin(a), _runs(a, "q")[0].id)  # the previous run ends: the held tick fires
    assert _both(a, b, start + timedelta(seconds=1, milliseconds=200)) == 1
    assert len(_runs(a, "q")) == 2 and len(_runs(a, "s")) == 1

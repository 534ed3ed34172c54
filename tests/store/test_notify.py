"""The PostgreSQL event bridge: events published on one node reach the others, batched."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from runyard.services.events import EventHub
from runyard.store.notify import MAX_PAYLOAD, PgNotifier
from tests.conftest import PgDatabase


@pytest.fixture
def pg_url(backend: str) -> Iterator[str]:
    if backend != "postgres":
        # This pass runs every other store test; LISTEN/NOTIFY exists only on PostgreSQL.
        pytest.skip("PostgreSQL only: SQLite nodes share no notification channel")
    pg = PgDatabase.create()
    try:
        yield pg.url
    finally:
        pg.drop()


def test_events_reach_other_nodes_in_order_however_many(pg_url: str) -> None:
    here, there = EventHub(), EventHub()
    sender, receiver = PgNotifier(pg_url, here), PgNotifier(pg_url, there)
    heard: list[tuple[str, object]] = []
    all_heard = threading.Event()
    n = 3000

    def on(topic: str, payload: object) -> None:
        heard.append((topic, payload))
        if len(heard) == n:
            all_heard.set()

    for i in range(n):
        there.subscribe(f"run.done:{i}", on)
    receiver.start()
    sender.start()
    try:
        time.sleep(0.3)  # the receiver is listening
        for i in range(n):
            here.publish(f"run.done:{i}", {"status": "succeeded", "i": i})  # returns at once
        assert all_heard.wait(15), len(heard)
        assert heard == [(f"run.done:{i}", {"status": "succeeded", "i": i}) for i in range(n)]
    finally:
        sender.stop()
        receiver.stop()


def test_batches_are_cut_to_the_payload_limit() -> None:
    notifier = PgNotifier("postgresql://unused/db", EventHub())  # packing needs no server
    batch = [[f"run.done:{i:05d}", {"status": "succeeded"}] for i in range(1000)]
    packets = notifier.packets(batch)
    assert len(packets) > 1 and all(len(p.encode()) < MAX_PAYLOAD for p in packets)
    assert notifier.packets([["huge", "x" * MAX_PAYLOAD]]) == []  # dropped, with a warning

"""The PostgreSQL event bridge: events published on one node reach the others, batched."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from runyard.events import EventHub
from runyard.store.notify import MAX_PAYLOAD, PgNotifier
from tests.support.servers import PgDatabase


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
        deadline = time.monotonic() + 10
        while not (sender.has_peers() and receiver.has_peers()) and time.monotonic() < deadline:
            time.sleep(0.01)  # each hears the other announce itself
        assert sender.has_peers() and receiver.has_peers()
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


def test_a_lone_node_relays_nothing_until_another_announces_itself(pg_url: str) -> None:
    import json

    import psycopg

    hub = EventHub()
    node = PgNotifier(pg_url, hub)
    with psycopg.connect(pg_url, autocommit=True) as spy:
        spy.execute("LISTEN runyard")
        node.start()
        try:
            hub.publish("run.done:alone", {"status": "succeeded"})
            heard = [e for note in spy.notifies(timeout=1.0) for e in json.loads(note.payload)["e"]]
            assert ["node.hello", None] in heard and not [e for e in heard if e[0].startswith("run.")]
            assert not node.has_peers()

            # Another node says hello: answered at once, and from then on events are relayed.
            spy.execute("SELECT pg_notify('runyard', %s)", (json.dumps({"n": "test-peer", "e": [["node.hello", None]]}),))
            deadline = time.monotonic() + 5
            while not node.has_peers() and time.monotonic() < deadline:
                time.sleep(0.01)
            hub.publish("run.done:heard", {"status": "succeeded"})
            heard = []
            for note in spy.notifies(timeout=1.0):
                heard += [e for e in json.loads(note.payload)["e"] if e[0] != "node.hello"]
            assert heard == [["node.alive", None], ["run.done:heard", {"status": "succeeded"}]]
        finally:
            node.stop()

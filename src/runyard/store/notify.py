"""PostgreSQL LISTEN/NOTIFY bridge for the event hub, so replicas and workers wake at once.

Publishing never waits for PostgreSQL: events are queued and a sender thread relays all
that are queued in one ``pg_notify`` (several when they exceed a payload), on a
connection of its own, in transactions that write nothing. PostgreSQL serialises the
commits of transactions that notify and holds that lock through their WAL flush, so a
NOTIFY inside each run's own write would make every run's end wait for the previous
one's fsync; relayed after the write has committed, a waiter that hears of it on
another node reads the committed run.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import deque
from typing import Any

import psycopg

from runyard.events import EventHub

log = logging.getLogger(__name__)
CHANNEL = "runyard"
MAX_PAYLOAD = 7000  # bytes of one NOTIFY payload (PostgreSQL allows < 8000)
ALIVE_EVERY_S = 10.0
PEER_TTL_S = 3 * ALIVE_EVERY_S


class PgNotifier:
    def __init__(self, sqlalchemy_url: str, hub: EventHub) -> None:
        self.dsn = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")
        self.hub = hub
        self.node = secrets.token_hex(8)  # unique across processes and machines (id() is not)
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._outbox: deque[list[Any]] = deque()
        self._wake = threading.Event()
        self._peers: dict[str, float] = {}  # other nodes heard of -> when last (monotonic)

    def start(self) -> None:
        self.hub.bridge = self.send
        self._listener = threading.Thread(target=self._listen, name="runyard-pg-listen", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="runyard-pg-notify", daemon=True)
        self._listener.start()
        self._sender.start()

    def stop(self) -> None:
        self.hub.bridge = None
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=2)  # it relays what is queued before it ends

    def send(self, topic: str, payload: Any) -> None:
        """Queue an event for the other nodes, if any were heard of lately; returns at once."""
        if self.has_peers():
            self._queue(topic, payload)

    def has_peers(self) -> bool:
        horizon = time.monotonic() - PEER_TTL_S
        return any(seen > horizon for seen in list(self._peers.values()))

    def _queue(self, topic: str, payload: Any) -> None:
        self._outbox.append([topic, payload])
        self._wake.set()

    # -- sending ---------------------------------------------------------------------------
    def _send_loop(self) -> None:
        conn: psycopg.Connection | None = None
        next_alive = time.monotonic() + ALIVE_EVERY_S
        while True:
            if not self._wake.wait(timeout=max(0.0, next_alive - time.monotonic())):
                next_alive = time.monotonic() + ALIVE_EVERY_S
                self._queue("node.alive", None)
            self._wake.clear()
            batch = self._take()
            if batch:
                conn = self._relay(conn, batch)
            if self._stop.is_set() and not self._outbox:
                break
        if conn is not None:
            conn.close()

    def _take(self) -> list[list[Any]]:
        batch = []
        while self._outbox:
            batch.append(self._outbox.popleft())
        return batch

    def _relay(self, conn: psycopg.Connection | None, batch: list[list[Any]]) -> psycopg.Connection | None:
        messages = list(self.packets(batch))
        for attempt in range(2):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                for message in messages:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))
                return conn
            except psycopg.Error:  # the connection broke: a new one (a repeated event is harmless)
                if conn is not None:
                    conn.close()
                conn = None
                if attempt:  # a lost notification only delays: every waiter also polls
                    log.warning("could not relay %d event(s) to other nodes", len(batch), exc_info=True)
        return conn

    def packets(self, batch: list[list[Any]]) -> list[str]:
        """The batch as NOTIFY payloads, each under MAX_PAYLOAD bytes (an event too big
        for one is dropped: events are small — topics and a status)."""
        out: list[str] = []
        current: list[list[Any]] = []
        size = 0
        for event in batch:
            encoded = json.dumps(event, separators=(",", ":"))
            if len(encoded) + 40 > MAX_PAYLOAD:
                log.warning("event %s is too big to relay", event[0])
                continue
            if current and size + len(encoded) + 40 > MAX_PAYLOAD:
                out.append(self._packet(current))
                current, size = [], 0
            current.append(event)
            size += len(encoded) + 1
        if current:
            out.append(self._packet(current))
        return out

    def _packet(self, events: list[list[Any]]) -> str:
        return json.dumps({"n": self.node, "e": events}, separators=(",", ":"))

    # -- listening -------------------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._queue("node.hello", None)  # listening now: the others answer
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._deliver(note.payload)
            except Exception:
                if not self._stop.is_set():
                    log.exception("LISTEN connection lost; reconnecting")
                    self._stop.wait(1.0)

    def _deliver(self, raw: str) -> None:
        try:
            message = json.loads(raw)
            node = message["n"]
            if node == self.node:
                return  # our own events were already delivered locally
            events = message["e"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        self._peers[node] = time.monotonic()
        for event in events:
            if not (isinstance(event, list) and len(event) == 2 and isinstance(event[0], str)):
                continue
            if event[0] == "node.hello":
                self._queue("node.alive", None)  # so the newcomer hears of us at once
            elif not event[0].startswith("node."):
                self.hub.deliver(event[0], event[1])

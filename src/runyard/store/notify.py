"""PostgreSQL LISTEN/NOTIFY bridge for the event hub, so replicas and workers wake at once."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import psycopg

from runyard.services.events import EventHub

log = logging.getLogger(__name__)
CHANNEL = "runyard"


class PgNotifier:
    def __init__(self, sqlalchemy_url: str, hub: EventHub) -> None:
        self.dsn = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")
        self.hub = hub
        self.node = id(self)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_conn: psycopg.Connection | None = None
        self._send_lock = threading.Lock()

    def start(self) -> None:
        self.hub.bridge = self.send
        self.hub.bridge_encode = self.encode
        self._thread = threading.Thread(target=self._listen, name="runyard-pg-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.hub.bridge = None
        self.hub.bridge_encode = None
        with self._send_lock:
            if self._send_conn is not None:
                self._send_conn.close()

    def encode(self, topic: str, payload: Any) -> tuple[str, str]:
        """``(channel, message)`` for a ``pg_notify`` that a statement of the caller sends:
        delivered when its transaction commits, with no round trip of its own."""
        return CHANNEL, json.dumps({"t": topic, "p": payload, "n": self.node})

    def send(self, topic: str, payload: Any) -> None:
        _channel, message = self.encode(topic, payload)
        with self._send_lock:
            for attempt in range(2):
                try:
                    if self._send_conn is None or self._send_conn.closed:
                        self._send_conn = psycopg.connect(self.dsn, autocommit=True)
                    self._send_conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))
                    return
                except psycopg.OperationalError:
                    self._send_conn = None
                    if attempt:
                        raise

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
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
        except ValueError:
            return
        if message.get("n") == self.node:
            return  # our own publish was already delivered locally
        self.hub.deliver(message["t"], message.get("p"))

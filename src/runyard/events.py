"""In-process publish/subscribe for run lifecycle events, optionally bridged across nodes.

Topics: ``run.queued`` (wake dispatchers), ``run.done:<id>`` (wake waiters),
``run.cancel:<id>`` (tell the worker holding the run), ``run.log:<id>`` (the run's log
grew: wake its followers). On PostgreSQL a bridge relays
every publish through NOTIFY so other replicas and workers hear it too.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Callback = Callable[[str, Any], None]


class Deferred:
    """A payload built only when read: by a subscriber, or later through ``recent``.

    Most runs end with nobody waiting on them; their end's payload (the whole run as
    the API shows it) need not be built then.
    """

    __slots__ = ("_build", "_value", "_built")

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._value: Any = None
        self._built = False

    def get(self) -> Any:
        if not self._built:  # two readers at once may both build it: the same value
            self._value, self._built = self._build(), True
        return self._value


def _value(payload: Any) -> Any:
    return payload.get() if isinstance(payload, Deferred) else payload


class EventHub:
    def __init__(self, remember: int = 64) -> None:
        self._subs: dict[str, set[Callback]] = defaultdict(set)
        self._lock = threading.Lock()
        self.bridge: Callable[[str, Any], None] | None = None
        # The last payload of recent topics: a subscriber that arrives just after a
        # publish (a run that ended before its waiter subscribed) can still see it.
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._remember = remember

    def subscribe(self, topic: str, callback: Callback) -> Callable[[], None]:
        with self._lock:
            self._subs[topic].add(callback)

        def unsubscribe() -> None:
            with self._lock:
                subs = self._subs.get(topic)
                if subs is not None:
                    subs.discard(callback)
                    if not subs:
                        self._subs.pop(topic, None)

        return unsubscribe

    def publish(self, topic: str, payload: Any = None, *, remote: bool = True, remote_payload: Any = None) -> None:
        """Deliver locally; bridged nodes get ``remote_payload`` (when given) — keep it small.

        ``payload`` may be a ``Deferred``: subscribers and ``recent`` get what it builds.
        """
        self.deliver(topic, payload)
        if remote and self.bridge is not None:
            try:
                self.bridge(topic, _value(payload) if remote_payload is None else remote_payload)
            except Exception:  # a lost notification only delays: every waiter also polls
                log.exception("event bridge failed for %s", topic)

    def recent(self, topic: str) -> Any:
        """The last payload published on ``topic`` lately (None if none is remembered)."""
        with self._lock:
            payload = self._recent.get(topic)
        return _value(payload)

    def has_subscribers(self, topic: str) -> bool:
        """Whether anyone in this process listens to ``topic`` (a dict lookup, no lock)."""
        return topic in self._subs

    def deliver(self, topic: str, payload: Any) -> None:
        with self._lock:
            callbacks = list(self._subs.get(topic, ()))
            if payload is not None:
                self._recent[topic] = payload
                if len(self._recent) > self._remember:
                    self._recent.popitem(last=False)
        if callbacks:
            payload = _value(payload)
        for callback in callbacks:
            try:
                callback(topic, payload)
            except Exception:
                log.exception("event subscriber failed for %s", topic)

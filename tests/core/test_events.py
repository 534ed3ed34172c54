"""The event hub builds a deferred payload only when someone reads it."""

from __future__ import annotations

from typing import Any

from runyard.events import Deferred, EventHub


def test_a_deferred_payload_is_built_once_and_only_when_read() -> None:
    hub = EventHub()
    built: list[int] = []

    def build() -> dict[str, Any]:
        built.append(1)
        return {"status": "succeeded"}

    hub.publish("run.done:a", Deferred(build))
    assert built == []  # nobody listened
    assert hub.recent("run.done:a") == {"status": "succeeded"}  # a late waiter still sees it
    assert hub.recent("run.done:a") == {"status": "succeeded"} and built == [1]

    seen: list[Any] = []
    hub.subscribe("run.done:b", lambda _topic, payload: seen.append(payload))
    hub.publish("run.done:b", Deferred(build))
    assert seen == [{"status": "succeeded"}] and built == [1, 1]

    relayed: list[Any] = []
    hub.bridge = lambda topic, payload: relayed.append((topic, payload))
    hub.publish("run.done:c", Deferred(build), remote_payload={"status": "succeeded"})
    assert relayed == [("run.done:c", {"status": "succeeded"})] and built == [1, 1]  # the small payload went

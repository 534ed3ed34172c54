"""Awaiting a run's end (or its wait for input) without polling the database in a tight loop.

A waiter subscribes to ``run.done:<id>`` on the event hub (bridged across nodes on
PostgreSQL) and falls back to a slow re-read, so a lost notification only delays.
"""

from __future__ import annotations

import asyncio
import time

from runyard.api.offload import in_thread
from runyard.services.access import Principal
from runyard.services.runs import TERMINAL_STATUSES, WAITING
from runyard.wiring import Platform

FALLBACK_POLL_S = 0.5


async def wait_for_run(platform: Platform, principal: Principal, run_id: str, timeout: float,
                       *, expand_inputs: bool = False, first: dict | None = None) -> dict:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    delivered: list[dict] = []

    def mark_done() -> None:
        if not done.done():
            done.set_result(None)

    def on_done(_topic: str, payload: object) -> None:
        if isinstance(payload, dict) and isinstance(payload.get("run"), dict):
            delivered.append(payload["run"])
        loop.call_soon_threadsafe(mark_done)

    topic = f"run.done:{run_id}"
    unsubscribe = platform.hub.subscribe(topic, on_done)
    try:
        deadline = time.monotonic() + timeout
        ended = platform.hub.recent(topic)  # it may have ended before we subscribed
        if ended is not None:
            on_done(topic, ended)
        run = first or await in_thread(platform.runs.get, principal, run_id, expand_inputs=expand_inputs)
        # A run waiting for a person's input cannot go on without one: the wait ends there too
        # (noticed by the re-read, within FALLBACK_POLL_S).
        while run["status"] not in TERMINAL_STATUSES and run["status"] != WAITING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # asyncio.wait on the future itself: no task per wait, and a timeout leaves it pending.
            await asyncio.wait((done,), timeout=min(remaining, FALLBACK_POLL_S))
            if delivered:
                run = dict(delivered[-1])
                if not expand_inputs:
                    run.pop("inputs", None)
                return run
            run = await in_thread(platform.runs.get, principal, run_id, expand_inputs=expand_inputs)
        return run
    finally:
        unsubscribe()

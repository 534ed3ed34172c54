"""Server-sent events: a small incremental parser, and live run logs that survive a
dropped connection.

The log stream's event ids are byte offsets into the run log, so resuming with
``Last-Event-ID`` continues exactly after the last chunk we saw: nothing is repeated
and nothing is lost. Partial lines are buffered across chunks *and* across reconnects,
so callers only ever see whole lines.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ._base import RequestOptions
from ._endpoint import Close, Emit, Open, Plan, Read, Sleep, Stream, iterate_async, iterate_sync
from .errors import APIConnectionError, APIStatusError

if TYPE_CHECKING:
    from ._base import AsyncAPIClient, SyncAPIClient

__all__ = ["ServerSentEvent", "SSEDecoder", "LogStream", "AsyncLogStream"]

#: How long a stream may stay silent before we reconnect (a quiet run is not an error:
#: the reconnect resumes from the last offset).
STREAM_READ_TIMEOUT = 60.0
#: Consecutive failed (re)connections, without any event in between, before giving up.
MAX_RECONNECTS = 8


@dataclass
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Incremental decoder following the WHATWG event-stream rules: feed it lines (with
    their terminators already removed), get events at each blank line."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        if not line:
            if self._event is None and not self._data and self._id is None:
                return None
            sse = ServerSentEvent(
                event=self._event or "message", data="\n".join(self._data), id=self._id, retry=self._retry
            )
            self._event, self._data, self._id, self._retry = None, [], None, None
            return sse
        if line.startswith(":"):  # comment / keep-alive
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            with contextlib.suppress(ValueError):
                self._retry = int(value)
        return None

    def iter(self, lines: Iterable[str]) -> Iterator[ServerSentEvent]:
        for line in lines:
            event = self.decode(line)
            if event is not None:
                yield event

    async def aiter(self, lines: AsyncIterator[str]) -> AsyncIterator[ServerSentEvent]:
        async for line in lines:
            event = self.decode(line)
            if event is not None:
                yield event


class _LogState:
    """What both log streams share: the resume point and the
    terminal status from the ``end`` event."""

    def __init__(self, run_id: str, offset: int) -> None:
        self.run_id = run_id
        self.offset = offset
        self.last_event_id: str | None = None
        self.status: str | None = None
        self.ended = False

    def request(self, timeout: float) -> RequestOptions:
        headers = {"Accept": "text/event-stream"}
        params: dict[str, Any] = {"follow": True}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        elif self.offset:
            params["offset"] = self.offset
        return RequestOptions(
            "GET",
            f"/runs/{self.run_id}/logs",
            params=params,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0, read=STREAM_READ_TIMEOUT),
        )

    def feed(self, event: ServerSentEvent) -> list[str]:
        if event.event == "end":
            self.ended = True
            try:
                self.status = json.loads(event.data).get("status") if event.data else None
            except (ValueError, AttributeError):
                self.status = None
            return []
        if event.event not in ("log", "message"):
            return []
        # The id is recorded with the chunk it belongs to: once its lines are handed out,
        # a reconnect must start after them. The server cuts chunks at line ends (its
        # final newline dropped, since SSE data cannot end with one), so each event is
        # whole lines.
        if event.id is not None:
            self.last_event_id = event.id
        return event.data.split("\n")


def _reconnect_delay(failures: int) -> float:
    return min(0.25 * (2.0 ** (failures - 1)), 4.0) * (1 - 0.25 * random.random())


def follow_plan(state: _LogState, timeout: float) -> Plan[None]:
    """Emit the log's lines as they come, until the ``end`` event; reconnect (resuming
    after the last line handed out) when the connection drops, goes quiet or closes
    early, giving up after :data:`MAX_RECONNECTS` failures in a row."""
    failures = 0
    while not state.ended:
        stream: Stream | None = None
        try:
            stream = yield Open(state.request(timeout), lines=True)
            decoder = SSEDecoder()
            while (line := (yield Read(stream))) is not None:
                event = decoder.decode(line)
                if event is None:
                    continue
                failures = 0
                for text in state.feed(event):
                    yield Emit(text)
                if state.ended:
                    return
            # The server closed the stream without an ``end`` event: resume.
            failure: Exception | None = APIConnectionError(
                f"log stream of {state.run_id} kept closing without an end event")
        except APIStatusError:
            raise
        except httpx.ReadTimeout:
            failure = None  # quiet run: just resume
        except (APIConnectionError, httpx.TransportError) as exc:
            failure = exc
        if stream is not None:
            yield Close(stream)
        if failure is None:
            continue
        failures += 1
        if failures > MAX_RECONNECTS:
            raise failure
        yield Sleep(_reconnect_delay(failures))


class _LogStreamBase:
    def __init__(self, client: Any, run_id: str, *, offset: int = 0, timeout: float = 600.0) -> None:
        self._client = client
        self._state = _LogState(run_id, offset)
        self._timeout = timeout

    @property
    def status(self) -> str | None:
        """The run's terminal status, from the ``end`` event (None until then)."""
        return self._state.status

    @property
    def last_event_id(self) -> str | None:
        """Where a reconnect resumes: the byte offset after the last line handed out."""
        return self._state.last_event_id


class LogStream(_LogStreamBase):
    """Iterator over the lines of a run's log, live, until the run ends.

    After iteration ``status`` holds the terminal status the server reported.
    """

    _client: SyncAPIClient

    def __iter__(self) -> Iterator[str]:
        return iterate_sync(self._client, follow_plan(self._state, self._timeout))


class AsyncLogStream(_LogStreamBase):
    """Async twin of :class:`LogStream`: ``async for line in client.runs.logs(id, follow=True)``."""

    _client: AsyncAPIClient

    def __aiter__(self) -> AsyncIterator[str]:
        return iterate_async(self._client, follow_plan(self._state, self._timeout))

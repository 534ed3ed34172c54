"""One definition per endpoint, two thin executors.

An endpoint is written once, as a *plan*: a generator that yields what it needs from
the network — a request to send, a pause, a stream to open, read or close — receives
the answer at its ``yield``, and returns the endpoint's value. It builds the request,
checks the parameters and parses the response; it never does I/O itself. Two executors
carry plans out: :func:`run_sync` with blocking calls, :func:`run_async` with awaits.
An error the transport raises is thrown into the plan at its ``yield``, so a plan
handles failures (a dropped stream, a read timeout) the same way for both.

The :class:`endpoint` descriptor turns one plan method into the public method of the
sync resource (which returns the value) and of the async one (which returns a
coroutine). :class:`listing` does the same for list endpoints (a
:class:`~runyard.sdk.pagination.SyncCursorPage` or an awaitable/iterable
:class:`~runyard.sdk.pagination.AsyncPaginator`) and :class:`streamed` for plans that
hand out items while they run (an iterator or an async iterator).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import httpx

from ._base import RequestOptions
from .models import RunyardModel
from .pagination import AsyncPaginator, SyncCursorPage

if TYPE_CHECKING:
    from typing import Self

    from ._base import AsyncAPIClient, SyncAPIClient
    from .resources._resource import AsyncResource, SyncResource

__all__ = [
    "Send", "Sleep", "Open", "Read", "Close", "Emit", "Plan", "Listing", "endpoint", "listing", "streamed",
    "run_sync", "run_async", "iterate_sync", "iterate_async",
]

T = TypeVar("T")
M = TypeVar("M", bound=RunyardModel)
P = ParamSpec("P")


# ---- what a plan may ask for --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send a request (with the client's retries); the answer is the successful
    ``httpx.Response``, read whole. A failure is raised into the plan."""

    opts: RequestOptions


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause for ``seconds``; the answer is None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Open:
    """Send a request and keep its body streaming; the answer is a :class:`Stream` to
    :class:`Read` from (text lines when ``lines``, else byte chunks)."""

    opts: RequestOptions
    lines: bool = False


@dataclass(slots=True)
class Stream:
    response: httpx.Response
    pieces: Iterator[Any] | AsyncIterator[Any]

    @property
    def headers(self) -> httpx.Headers:
        return self.response.headers


@dataclass(frozen=True, slots=True)
class Read:
    """The next line or chunk of ``stream``; None at its end."""

    stream: Stream


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``stream`` (every stream still open is closed when the plan ends anyway)."""

    stream: Stream


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand ``item`` to the caller iterating a :class:`streamed` plan."""

    item: Any


Command = Send | Sleep | Open | Read | Close | Emit
#: A plan: yields commands, receives their answers, returns the endpoint's value.
Plan = Generator[Command, Any, T]


@dataclass(frozen=True, slots=True)
class Listing(Generic[M]):
    """A list endpoint: the request for the page after ``cursor`` (None: the first) and
    the model of its items."""

    model: type[M]
    request: Callable[[str | None], RequestOptions]


# ---- executors ----------------------------------------------------------------------------


@dataclass
class _Driver:
    """Steps a plan: hands it the last answer (or throws the last error into it) and
    returns its next command, or None once it has returned (its value in ``value``)."""

    plan: Plan[Any]
    reply: Any = None
    error: Exception | None = None
    value: Any = None
    streams: list[Stream] = field(default_factory=list)

    def next_command(self) -> Command | None:
        try:
            command = self.plan.send(self.reply) if self.error is None else self.plan.throw(self.error)
        except StopIteration as stop:
            self.value = stop.value
            return None
        self.reply = self.error = None
        return command


def _sync_step(client: SyncAPIClient, command: Command, streams: list[Stream]) -> Any:
    if isinstance(command, Send):
        return client.request(command.opts)
    if isinstance(command, Read):
        return next(command.stream.pieces, None)  # type: ignore[call-overload]
    if isinstance(command, Sleep):
        time.sleep(command.seconds)
        return None
    if isinstance(command, Open):
        response = client.send_streaming(command.opts)
        stream = Stream(response, response.iter_lines() if command.lines else response.iter_bytes())
        streams.append(stream)
        return stream
    if isinstance(command, Close):
        command.stream.response.close()
        return None
    raise TypeError(f"a plan run for its value cannot yield {command!r}")


async def _async_step(client: AsyncAPIClient, command: Command, streams: list[Stream]) -> Any:
    if isinstance(command, Send):
        return await client.request(command.opts)
    if isinstance(command, Read):
        return await anext(command.stream.pieces, None)  # type: ignore[call-overload]
    if isinstance(command, Sleep):
        await asyncio.sleep(command.seconds)
        return None
    if isinstance(command, Open):
        response = await client.send_streaming(command.opts)
        stream = Stream(response, response.aiter_lines() if command.lines else response.aiter_bytes())
        streams.append(stream)
        return stream
    if isinstance(command, Close):
        await command.stream.response.aclose()
        return None
    raise TypeError(f"a plan awaited for its value cannot yield {command!r}")


def iterate_sync(client: SyncAPIClient, plan: Plan[T]) -> Generator[Any, None, T]:
    """Carry ``plan`` out with blocking I/O, yielding what it emits; returns its value."""
    driver = _Driver(plan)
    try:
        while (command := driver.next_command()) is not None:
            if isinstance(command, Emit):
                yield command.item
                continue
            try:
                driver.reply = _sync_step(client, command, driver.streams)
            except Exception as exc:  # the plan decides: handle it or let it rise
                driver.error = exc
        return driver.value  # type: ignore[no-any-return]
    finally:
        plan.close()
        for stream in driver.streams:
            stream.response.close()


def run_sync(client: SyncAPIClient, plan: Plan[T]) -> T:
    """Carry ``plan`` out with blocking I/O and return its value."""
    steps = iterate_sync(client, plan)
    try:
        item = next(steps)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    steps.close()
    raise TypeError(f"a plan run for its value emitted {item!r}")


async def _drive_async(client: AsyncAPIClient, driver: _Driver) -> Command | None:
    """Step ``driver`` until its plan emits (that command) or returns (None)."""
    while (command := driver.next_command()) is not None:
        if isinstance(command, Emit):
            return command
        try:
            driver.reply = await _async_step(client, command, driver.streams)
        except Exception as exc:
            driver.error = exc
    return None


async def _close_async(driver: _Driver) -> None:
    driver.plan.close()
    for stream in driver.streams:
        await stream.response.aclose()


async def run_async(client: AsyncAPIClient, plan: Plan[T]) -> T:
    """Carry ``plan`` out with awaited I/O and return its value."""
    driver = _Driver(plan)
    try:
        emitted = await _drive_async(client, driver)
        if emitted is not None:
            raise TypeError(f"a plan awaited for its value emitted {emitted.item!r}")
        return driver.value  # type: ignore[no-any-return]
    finally:
        await _close_async(driver)


async def iterate_async(client: AsyncAPIClient, plan: Plan[Any]) -> AsyncIterator[Any]:
    """Carry ``plan`` out with awaited I/O, yielding what it emits."""
    driver = _Driver(plan)
    try:
        while (emitted := await _drive_async(client, driver)) is not None:
            yield emitted.item
    finally:
        await _close_async(driver)


def page_sync(client: SyncAPIClient, spec: Listing[M]) -> SyncCursorPage[M]:
    def fetch(cursor: str | None) -> Any:
        return client.request(spec.request(cursor)).json()

    return SyncCursorPage(fetch(None), spec.model, fetch)


def page_async(client: AsyncAPIClient, spec: Listing[M]) -> AsyncPaginator[M]:
    async def fetch(cursor: str | None) -> Any:
        return (await client.request(spec.request(cursor))).json()

    return AsyncPaginator(lambda: fetch(None), spec.model, fetch)


# ---- descriptors: one plan method, the public method of both resources ---------------------


class _Bound(Generic[P, T]):
    """Base of the descriptors: binds the plan method to the resource it is read from,
    keeps its name, signature and docstring (``help()`` and ``inspect`` see them), and
    caches the bound method on the resource."""

    def __init__(self, plan: Callable[Concatenate[Any, P], Any]) -> None:
        self.plan = plan
        self.name = plan.__name__
        functools.update_wrapper(self, plan)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The public method's signature: the plan's, without ``self``, returning what
        the plan returns (``Plan[Run]`` → ``Run``)."""
        sig = inspect.signature(self.plan)
        ret = sig.return_annotation
        if isinstance(ret, str) and ret.startswith(("Plan[", "Listing[")) and ret.endswith("]"):
            ret = ret[ret.index("[") + 1:-1]
        return sig.replace(parameters=list(sig.parameters.values())[1:], return_annotation=ret)

    def _wrap(self, resource: Any, call: Callable[..., Any]) -> Callable[..., Any]:
        plan = self.plan

        @functools.wraps(plan)
        def method(*args: Any, **kwargs: Any) -> Any:
            return call(plan(resource, *args, **kwargs))

        method.__signature__ = self.signature  # type: ignore[attr-defined]
        resource.__dict__[self.name] = method
        return method


class endpoint(_Bound[P, T]):
    """A plan method as a public method: ``T`` from a sync resource, a coroutine of ``T``
    from an async one."""

    def __init__(self, plan: Callable[Concatenate[Any, P], Plan[T]]) -> None:
        super().__init__(plan)

    @overload
    def __get__(self, resource: None, owner: type) -> Self: ...
    @overload
    def __get__(self, resource: SyncResource, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, resource: AsyncResource, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, resource: Any, owner: type) -> Any:
        if resource is None:
            return self
        return self._wrap(resource, resource._run)


class listing(_Bound[P, M]):
    """A list endpoint (the method returns a :class:`Listing`): the first page from a sync
    resource; from an async one, a paginator to await (first page) or ``async for``."""

    def __init__(self, plan: Callable[Concatenate[Any, P], Listing[M]]) -> None:
        super().__init__(plan)

    @overload
    def __get__(self, resource: None, owner: type) -> Self: ...
    @overload
    def __get__(self, resource: SyncResource, owner: type) -> Callable[P, SyncCursorPage[M]]: ...
    @overload
    def __get__(self, resource: AsyncResource, owner: type) -> Callable[P, AsyncPaginator[M]]: ...
    def __get__(self, resource: Any, owner: type) -> Any:
        if resource is None:
            return self
        return self._wrap(resource, resource._page)


class streamed(_Bound[P, Any]):
    """A plan that emits items (``Emit``) as it goes: an iterator of them from a sync
    resource, an async iterator from an async one."""

    def __init__(self, plan: Callable[Concatenate[Any, P], Plan[Any]]) -> None:
        super().__init__(plan)

    @overload
    def __get__(self, resource: None, owner: type) -> Self: ...
    @overload
    def __get__(self, resource: SyncResource, owner: type) -> Callable[P, Iterator[Any]]: ...
    @overload
    def __get__(self, resource: AsyncResource, owner: type) -> Callable[P, AsyncIterator[Any]]: ...
    def __get__(self, resource: Any, owner: type) -> Any:
        if resource is None:
            return self
        return self._wrap(resource, resource._iterate)

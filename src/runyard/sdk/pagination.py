"""Cursor pagination.

``client.X.list(...)`` returns the first page. Iterating a page walks *every* item
across all following pages, fetching them lazily; ``.items`` is just this page and
``.iter_pages()`` walks page objects for those who want them.

The async side mirrors openai-python: ``list()`` returns an :class:`AsyncPaginator`
that can be awaited (giving the first page) or iterated with ``async for`` (giving
every item).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

from .models import RunyardModel

__all__ = ["SyncCursorPage", "AsyncCursorPage", "AsyncPaginator"]

T = TypeVar("T", bound=RunyardModel)


def _parse_items(body: Any, model: type[T]) -> tuple[list[T], str | None, int | None]:
    if isinstance(body, list):  # tolerate a bare list from an endpoint that is not paginated
        return [model.model_validate(x) for x in body], None, None
    items = [model.model_validate(x) for x in body.get("items", [])]
    return items, body.get("next_cursor"), body.get("total")


class SyncCursorPage(Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int | None

    def __init__(self, body: Any, model: type[T], fetch: Callable[[str], Any]) -> None:
        self.items, self.next_cursor, self.total = _parse_items(body, model)
        self._model = model
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return bool(self.next_cursor)

    def get_next_page(self) -> SyncCursorPage[T]:
        if not self.next_cursor:
            raise RuntimeError("no next page: check has_next_page() first")
        return SyncCursorPage(self._fetch(self.next_cursor), self._model, self._fetch)

    def iter_pages(self) -> Iterator[SyncCursorPage[T]]:
        page: SyncCursorPage[T] = self
        while True:
            yield page
            if not page.has_next_page():
                return
            page = page.get_next_page()

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.items

    def __repr__(self) -> str:
        return f"SyncCursorPage(items={len(self.items)}, next_cursor={self.next_cursor!r}, total={self.total})"


class AsyncCursorPage(Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int | None

    def __init__(self, body: Any, model: type[T], fetch: Callable[[str], Awaitable[Any]]) -> None:
        self.items, self.next_cursor, self.total = _parse_items(body, model)
        self._model = model
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return bool(self.next_cursor)

    async def get_next_page(self) -> AsyncCursorPage[T]:
        if not self.next_cursor:
            raise RuntimeError("no next page: check has_next_page() first")
        return AsyncCursorPage(await self._fetch(self.next_cursor), self._model, self._fetch)

    async def iter_pages(self) -> AsyncIterator[AsyncCursorPage[T]]:
        page: AsyncCursorPage[T] = self
        while True:
            yield page
            if not page.has_next_page():
                return
            page = await page.get_next_page()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.items:
                yield item

    def __repr__(self) -> str:
        return f"AsyncCursorPage(items={len(self.items)}, next_cursor={self.next_cursor!r}, total={self.total})"


class AsyncPaginator(Generic[T]):
    """Awaitable → first :class:`AsyncCursorPage`; ``async for`` → every item."""

    def __init__(self, first: Callable[[], Awaitable[Any]], model: type[T], fetch: Callable[[str], Awaitable[Any]]) -> None:
        self._first = first
        self._model = model
        self._fetch = fetch

    async def _get_page(self) -> AsyncCursorPage[T]:
        return AsyncCursorPage(await self._first(), self._model, self._fetch)

    def __await__(self) -> Generator[Any, None, AsyncCursorPage[T]]:
        return self._get_page().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        page = await self._get_page()
        async for item in page:
            yield item

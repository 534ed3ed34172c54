"""Cursor iteration over more than three pages, sync and async."""

from __future__ import annotations

import asyncio

from runyard import AsyncClient, Client


def test_iterates_all_pages(client: Client, add_tool: str, unique: str) -> None:
    created = [client.runs.create(add_tool, {"a": i}, tags={"batch_id": unique}).id for i in range(9)]
    page = client.runs.list(batch_id=unique, limit=2, include_total=True)
    assert len(page.items) == 2 and page.has_next_page() and page.total == 9
    pages = list(page.iter_pages())
    assert len(pages) == 5
    seen = [r.id for r in client.runs.list(batch_id=unique, limit=2)]
    assert sorted(seen) == sorted(created) and len(set(seen)) == 9
    # Default order is newest first; ascending reverses it.
    asc = [r.id for r in client.runs.list(batch_id=unique, limit=2, order="asc")]
    assert asc == list(reversed(seen))


def test_async_iterates_all_pages(client: Client, add_tool: str, unique: str) -> None:
    created = {client.runs.create(add_tool, {"a": i}, tags={"batch_id": unique}).id for i in range(7)}

    async def go() -> tuple[list[str], int, int]:
        async with AsyncClient(api_key=client.api_key, base_url=client.base_url) as ac:
            ids = [r.id async for r in ac.runs.list(batch_id=unique, limit=2)]
            first = await ac.runs.list(batch_id=unique, limit=2)
            n_pages = 0
            async for _ in first.iter_pages():
                n_pages += 1
            return ids, len(first.items), n_pages

    ids, first_len, n_pages = asyncio.run(go())
    assert set(ids) == created and len(ids) == 7
    assert first_len == 2 and n_pages == 4


def test_filters_sorts_and_an_offset(client: Client, add_tool: str, unique: str) -> None:
    created = [client.runs.create(add_tool, {"a": i}, tags={"batch_id": unique}, wait=30).id for i in range(5)]
    me = client.runs.get(created[0]).triggered_by
    assert me and client.runs.get(created[0]).trigger == "sdk" and client.runs.get(created[0]).type == "tool"
    by_end = [r.id for r in client.runs.list(batch_id=unique, sort="finished_at", order="asc", limit=2)]
    assert sorted(by_end) == sorted(created)
    # the offset places the first page; the next pages follow its cursor
    skipped = [r.id for r in client.runs.list(batch_id=unique, sort="finished_at", order="asc", offset=1, limit=2)]
    assert skipped == by_end[1:]
    picked = client.runs.list(ids=created[:2], trigger=["sdk", "cli"], triggered_by=me, source=add_tool, type="tool")
    assert sorted(r.id for r in picked) == sorted(created[:2])
    assert list(client.runs.list(batch_id=unique, trigger="schedule")) == []
    assert [r.id for r in client.runs.list(batch_id=unique, sort="duration", limit=1, completed_after="2000-01-01T00:00:00Z")]

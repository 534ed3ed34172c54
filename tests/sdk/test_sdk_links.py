"""``client.links`` against the shared server: create (and again), list, pairs, linked rows,
preview, recalculate, delete; the async client too."""

from __future__ import annotations

import asyncio

from runyard import AsyncClient


def _rows(client, ns: str) -> None:
    client.namespaces.create(ns)
    client.datasets.ingest(ns, "customers", [{"cid": f"C{i}", "name": f"n{i}"} for i in range(30)], create=True)
    client.datasets.ingest(ns, "orders", [{"oid": i, "cid": f" c{i % 20}"} for i in range(60)], create=True)


def test_links_resource(client, server, unique):
    ns = f"sdkl-{unique}"
    _rows(client, ns)
    link = client.links.create(f"{ns}/orders.cid", f"{ns}/customers.cid", options={"min_distinct": 5})
    assert link.created is True and link.pair_count == 60 and link.from_.dataset == "orders"
    again = client.links.create(f"{ns}/customers.cid", f"{ns}/orders.cid")
    assert again.created is False and again.id == link.id
    assert link.id in [x.id for x in client.links.list(ns, status="active")]
    pairs = list(client.links.pairs(link.id, limit=25))
    assert len(pairs) == 60 and len({(p.from_id, p.to_id) for p in pairs}) == 60
    linked = list(client.links.linked(ns, "orders", pairs[0].from_id))
    assert [r.dataset for r in linked] == ["customers"] and linked[0].row["cid"].startswith("C")
    preview = client.links.preview(f"{ns}/orders.cid", f"{ns}/customers.cid")
    assert preview["links"][0]["pair_count"] == 60
    assert client.links.recalculate(ns, link_id=link.id)["recalculated"][0]["pair_count"] == 60

    async def from_async() -> int:
        async with AsyncClient(api_key=server.admin_key, base_url=server.base_url) as ac:
            got = await ac.links.get(link.id)
            return int(got.pair_count or 0)
    assert asyncio.run(from_async()) == 60
    client.links.delete(link.id)
    assert link.id not in [x.id for x in client.links.list(ns)]

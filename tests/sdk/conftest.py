"""SDK test fixtures: clients bound to the shared loopback server and a fault proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runyard import Client
from tests.support.sdk import ADD_CODE, FaultProxy


@pytest.fixture
def proxy(server: Any) -> Iterator[FaultProxy]:
    p = FaultProxy(server.base_url)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(api_key=server.admin_key, base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def make_client(server: Any) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("api_key", server.admin_key)
        kwargs.setdefault("base_url", server.base_url)
        c = Client(**kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def add_tool(client: Client, unique: str) -> str:
    name = f"add-{unique}"
    client.tools.deploy(ADD_CODE, name=name)
    return name

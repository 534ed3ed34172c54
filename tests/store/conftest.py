"""A scratch database for the store tests: SQLite in the test's dir, or a fresh
PostgreSQL database (dropped afterwards) on the PostgreSQL pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.config import Settings
from runyard.store.db import Database
from runyard.wiring import Platform
from tests.support.servers import PgDatabase


@pytest.fixture
def platform(backend: str, tmp_path: Path) -> Iterator[Platform]:
    """A whole node's services (no server, no worker) on the backend of this pass."""
    pg = PgDatabase.create() if backend == "postgres" else None
    plat = Platform(Settings(data_dir=tmp_path / "data", database_url=pg.url if pg else None))
    try:
        yield plat
    finally:
        plat.close()
        if pg:
            pg.drop()


@pytest.fixture
def scratch_db(backend: str, tmp_path: Path) -> Iterator[Database]:
    pg = PgDatabase.create() if backend == "postgres" else None
    url = pg.url.replace("postgresql://", "postgresql+psycopg://") if pg else f"sqlite:///{tmp_path / 'scratch.db'}"
    database = Database(url)
    try:
        yield database
    finally:
        database.dispose()
        if pg:
            pg.drop()

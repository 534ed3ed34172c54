"""Migration 0020: tools made before owners were recorded keep being every user's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from runyard.store.migrate import alembic_config
from tests.support.servers import PgDatabase


@pytest.fixture
def engine(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    pg = PgDatabase.create() if backend == "postgres" else None
    url = pg.url.replace("postgresql://", "postgresql+psycopg://", 1) if pg else f"sqlite:///{tmp_path / 'm.db'}"
    made = sa.create_engine(url)
    try:
        yield made
    finally:
        made.dispose()
        if pg:
            pg.drop()


def test_existing_tools_become_public_and_versions_function_mode(engine: sa.Engine) -> None:
    config = alembic_config(engine)
    command.upgrade(config, "0019_run_search")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO tools (id, workspace_id, name, description, visibility, latest_version, created_at, "
            "updated_at) VALUES ('tool_old', 'ws_1', 'old', '', 'private', 1, :now, :now)"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO tool_versions (id, workspace_id, tool_id, version, description, source_kind, source_name, "
            "code_blob, code_sha256, module, entrypoint, input_schema, input_schema_inferred, requirements, "
            "required_secrets, default_inputs, timeout_s, memory_mb, retries, reuse_process, retry_backoff_s, "
            "network, created_at) VALUES ('tv_old', 'ws_1', 'tool_old', 1, '', 'code', 'main.py', 'b', 'x', "
            "'main', 'main', '{}', false, '[]', '[]', '{}', 600, 1024, 0, false, 0, true, :now)"), {"now": now})
    command.upgrade(config, "0020_tool_scripts")
    with engine.connect() as conn:
        tool = conn.execute(sa.text("SELECT visibility, owner_id FROM tools WHERE id = 'tool_old'")).one()
        version = conn.execute(sa.text("SELECT mode, output_vars FROM tool_versions WHERE id = 'tv_old'")).one()
    assert tuple(tool) == ("public", None)
    assert tuple(version) == ("function", None)
    command.downgrade(config, "0019_run_search")
    with engine.connect() as conn:
        assert "owner_id" not in {c["name"] for c in sa.inspect(conn).get_columns("tools")}

"""Storage accounting: what a workspace keeps, and the quota on it: the ``storage_bytes`` of
the workspace's plan (services.plans) when the operator gave one, else the node's
``RUNYARD_STORAGE_QUOTA_BYTES`` (0: unlimited).

What counts: workspace files, dataset bytes (their Parquet parts), run artifacts, the
files of expected outputs (evaluation) and the bytes of multipart uploads still open
(reserved at ``POST /uploads``). Each is a sum over
a size column kept with its rows (``ix_run_artifacts_ws_size`` lets the largest one be
read from its index alone), so usage is exact without a counter that could drift.

``check`` runs before a write commits. A write that must not race another one past the
quota (a workspace file) checks inside its own write transaction, which ``lock`` orders
per workspace on PostgreSQL (SQLite's writes are serialised already).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from runyard.services.errors import DomainError
from runyard.store.db import Database
from runyard.store.tables import run_artifacts, workspaces
from runyard.store.tables_data import datasets, uploads
from runyard.store.tables_evaluation import expected_files, expected_sets
from runyard.store.tables_files import workspace_files


class StorageQuotaExceeded(DomainError):
    status = 413
    code = "storage_quota_exceeded"


def storage_used(conn: sa.Connection, workspace_id: str) -> dict[str, int]:
    """Bytes the workspace keeps, by kind (``files``, ``datasets``, ``artifacts``, ``expected``,
    ``uploads``)."""
    def total(column: Any, *where: Any) -> int:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(*where)).scalar_one())

    return {
        "files": total(workspace_files.c.size, workspace_files.c.workspace_id == workspace_id),
        "datasets": total(datasets.c.byte_count, datasets.c.workspace_id == workspace_id),
        "artifacts": total(run_artifacts.c.size, run_artifacts.c.workspace_id == workspace_id),
        "expected": total(expected_files.c.size, expected_files.c.expected_id.in_(
            sa.select(expected_sets.c.id).where(expected_sets.c.workspace_id == workspace_id))),
        "uploads": total(uploads.c.size, uploads.c.workspace_id == workspace_id, uploads.c.status == "open"),
    }


class StorageQuota:
    """``default_bytes``: every workspace's quota unless its plan gives one (0: unlimited);
    ``plan_bytes``: a workspace's plan quota, or None to use the default."""

    def __init__(self, db: Database, default_bytes: int = 0,
                 plan_bytes: Callable[[str], int | None] | None = None) -> None:
        self.db = db
        self.default_bytes = default_bytes
        self.plan_bytes = plan_bytes

    def limit(self, workspace_id: str) -> int:
        """The workspace's quota in bytes (0: unlimited)."""
        planned = self.plan_bytes(workspace_id) if self.plan_bytes is not None else None
        return self.default_bytes if planned is None else planned

    def usage(self, workspace_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            by_kind = storage_used(conn, workspace_id)
        return {"object": "storage_usage", "used_bytes": sum(by_kind.values()),
                "quota_bytes": self.limit(workspace_id) or None, "by_kind": by_kind}

    def check(self, workspace_id: str, adding: int, conn: sa.Connection | None = None,
              *, replacing: int = 0) -> None:
        """Raise 413 ``storage_quota_exceeded`` if ``adding`` more bytes (less ``replacing``,
        the bytes the write frees) would pass the quota. ``conn``: count inside that transaction."""
        limit = self.limit(workspace_id)
        if limit <= 0:
            return
        if conn is None:
            with self.db.read() as own:
                used = sum(storage_used(own, workspace_id).values())
        else:
            used = sum(storage_used(conn, workspace_id).values())
        if used - replacing + adding > limit:
            raise StorageQuotaExceeded(
                f"the workspace's storage quota ({limit} bytes) would be exceeded "
                f"({used} used, {adding} more)",
                details={"quota_bytes": limit, "used_bytes": used, "adding_bytes": adding})

    def lock(self, conn: sa.Connection, workspace_id: str) -> None:
        """Order quota-checked writes of one workspace (PostgreSQL; a no-op where writes are serial)."""
        if conn.dialect.name == "postgresql" and self.limit(workspace_id) > 0:
            conn.execute(sa.select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update())

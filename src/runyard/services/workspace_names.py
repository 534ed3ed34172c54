"""A workspace's name, as a caller may read it: front ends that address a workspace by name
(DeepOrigin's ``org_key`` in its paths) check the name against the caller's own workspace."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from runyard.services.access import Permission, Principal
from runyard.services.errors import NotFound
from runyard.store.db import Database
from runyard.store.tables import workspaces

READ_WORKSPACE_NAME = Permission("viewer", "read its workspace's name")


class WorkspaceNames:
    """Names by workspace id, read once per process: a workspace is never renamed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def of(self, principal: Principal) -> str:
        """The name of the caller's own workspace (never another's)."""
        READ_WORKSPACE_NAME.check(principal)
        ws = principal.workspace_id
        with self._lock:
            name = self._names.get(ws)
        if name is None:
            with self.db.read() as conn:
                name = conn.execute(sa.select(workspaces.c.name).where(workspaces.c.id == ws)).scalar()
            if name is None:
                raise NotFound("the key's workspace does not exist", code="workspace_not_found")
            with self._lock:
                self._names[ws] = name
        return name

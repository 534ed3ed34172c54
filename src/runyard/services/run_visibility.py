"""Which runs a key may see: a run follows its tool's visibility (docs/api.md, "Tool
visibility"). A run of another user's private tool is hidden from members and viewers,
404 ``run_not_found`` like a run that does not exist, unless the run is their own (it
was started as them before the tool went private). Admins see every run. ``run_filter``
and ``sees_run`` also apply a restricted key's tool list; ``visibility_clause`` does not
(the list and search queries filter on it themselves)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.store.db import Database
from runyard.store.tables import runs, tools


def hidden_tool_ids(conn: sa.Connection, principal: Principal) -> list[str]:
    """The ids of the tools whose runs ``principal`` may not see (other users' private
    tools; none for an admin)."""
    if principal.role == "admin":
        return []
    query = sa.select(tools.c.id).where(tools.c.workspace_id == principal.workspace_id,
                                        tools.c.visibility == "private", tools.c.owner_id.is_not(None))
    if principal.user_id is not None:
        query = query.where(tools.c.owner_id != principal.user_id)
    return sorted(conn.execute(query).scalars())


def visibility_clause(conn: sa.Connection, principal: Principal) -> Any | None:
    """A WHERE condition on ``runs`` hiding what ``principal`` may not see, or None when
    nothing is hidden (the usual case: no clause, so no change to the query's plan)."""
    hidden = hidden_tool_ids(conn, principal)
    if not hidden:
        return None
    others = runs.c.tool_id.not_in(hidden)
    if principal.user_id is None:
        return others
    return sa.or_(runs.c.user_id == principal.user_id, others)


def _sees_without_a_query(principal: Principal, row: Any) -> bool:
    """Runs an admin or their own user always sees (within the key's tool restriction)."""
    return principal.role == "admin" or (principal.user_id is not None and row.user_id == principal.user_id)


def run_filter(conn: sa.Connection, principal: Principal) -> Callable[[Any], bool]:
    """A test of run rows: whether ``principal`` may see each (its tool restriction
    included), with one query however many rows it is given."""
    hidden = frozenset(hidden_tool_ids(conn, principal))

    def sees(row: Any) -> bool:
        if not principal.can_use_tool(row.tool_id):
            return False
        return row.tool_id not in hidden or _sees_without_a_query(principal, row)

    return sees


def sees_run(db: Database, principal: Principal, row: Any) -> bool:
    """Whether ``principal`` may see the run ``row``; reads the database only for another
    user's run seen by a member or viewer (the hot read path usually needs no query)."""
    if not principal.can_use_tool(row.tool_id):
        return False
    if _sees_without_a_query(principal, row):
        return True
    with db.read() as conn:
        return run_filter(conn, principal)(row)

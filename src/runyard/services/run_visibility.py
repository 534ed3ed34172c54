"""Which runs a key may see: a run follows its tool's visibility (docs/api.md, "Tool
visibility"). A run of another user's private tool is hidden from members and viewers,
404 ``run_not_found`` like a run that does not exist, unless the run is their own (it
was started as them before the tool went private). Admins see every run; a restricted
key's tool list is checked by the callers, as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Principal
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


def run_filter(conn: sa.Connection, principal: Principal) -> Callable[[Any], bool]:
    """A test of run rows: whether ``principal`` may see each (its tool restriction
    included), with one query however many rows it is given."""
    hidden = frozenset(hidden_tool_ids(conn, principal))

    def sees(row: Any) -> bool:
        if not principal.can_use_tool(row.tool_id):
            return False
        return row.tool_id not in hidden or (principal.user_id is not None and row.user_id == principal.user_id)

    return sees


def sees_run(conn: sa.Connection, principal: Principal, row: Any) -> bool:
    """Whether ``principal`` may see the run ``row``."""
    return run_filter(conn, principal)(row)

"""What schedules, webhooks and email triggers share: their target, and whose they are."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.errors import NotFound, ValidationFailed
from runyard.services.tools import ToolService


def check_target(tool: Any, workflow: Any) -> str:
    """The target's name from a body's ``tool`` / ``workflow`` (exactly one)."""
    if workflow is not None:
        raise ValidationFailed("workflow targets are not supported yet; give a tool",
                               code="unsupported_target", details={"field": "workflow"})
    if not isinstance(tool, str) or not tool or len(tool) > 200:
        raise ValidationFailed("tool is required", details={"field": "tool"})
    return tool


def check_tool_target(tools: ToolService, principal: Principal, tool: str) -> tuple[Any, Any]:
    """The tool and its latest version; 400 ``invalid_target`` unless the principal can see
    (and so run) it."""
    try:
        return tools.visible(principal, tool)
    except NotFound as exc:
        raise ValidationFailed(f"tool {tool!r} not found", code="invalid_target",
                               details={"field": "tool", "tool": tool}) from exc


def owned_row(conn: sa.Connection, table: sa.Table, principal: Principal, row_id: str, *, what: str,
              code: str, detail: str) -> Any:
    """A trigger of the principal's workspace that its user owns (any, for an admin); 404 as
    if it did not exist otherwise."""
    query = sa.select(table).where(table.c.id == row_id, table.c.workspace_id == principal.workspace_id)
    if principal.role != "admin":
        query = query.where(table.c.user_id == (principal.user_id or ""))
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found", code=code, details={detail: row_id})
    return row

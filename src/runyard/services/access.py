"""Who may do what. Roles are ordered: viewer < member < admin."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from runyard.services.errors import PermissionDenied

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


def rank(role: str) -> int:
    """The order of ``role`` (viewer 0 < member 1 < admin 2)."""
    return _RANK[role]  # type: ignore[index]


@dataclass(frozen=True)
class Principal:
    token_id: str
    workspace_id: str
    role: Role
    tools: frozenset[str] = field(default_factory=frozenset)       # empty = all tools
    namespaces: frozenset[str] = field(default_factory=frozenset)  # empty = all namespaces
    expires_at: datetime | None = None  # when the key stops working (None: never)

    def require(self, role: Role, action: str) -> None:
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDenied(f"a {self.role} token cannot {action}; it needs the {role} role",
                                   code="insufficient_role", details={"required_role": role})

    @property
    def restricted(self) -> bool:
        """Whether the token is restricted to some tools or namespaces."""
        return bool(self.tools or self.namespaces)

    def covers(self, tools: Collection[str], namespaces: Collection[str]) -> bool:
        """Whether restrictions ``tools``/``namespaces`` (empty = all) reach no further than
        this principal's: each dimension it is restricted on must be restricted on too,
        to a subset. An unrestricted principal covers everything."""
        for mine, theirs in ((self.tools, tools), (self.namespaces, namespaces)):
            if mine and (not theirs or not set(theirs) <= mine):
                return False
        return True

    def can_use_tool(self, tool_name: str) -> bool:
        return not self.tools or tool_name in self.tools

    def require_tool(self, tool_name: str) -> None:
        if not self.can_use_tool(tool_name):
            raise PermissionDenied(f"this token is restricted and cannot use tool {tool_name!r}",
                                   code="restricted", details={"tool": tool_name})


@dataclass(frozen=True)
class Permission:
    """What an operation asks of its caller: at least ``role`` and, with ``unrestricted``,
    a key restricted to nothing. Each service declares its own beside the operations that
    check them (``CREATE_RUNS.check(principal)`` first thing); a front end that must refuse
    a caller before reading a large body checks the same declaration early, and the
    service checks it again."""

    role: Role
    action: str  # "create runs": completes "a viewer token cannot …"
    unrestricted: bool = False

    def allows(self, principal: Principal) -> bool:
        return _RANK[principal.role] >= _RANK[self.role] and not (self.unrestricted and principal.restricted)

    def check(self, principal: Principal) -> None:
        """Raise 403 ``insufficient_role`` (or ``restricted``) unless ``principal`` may."""
        principal.require(self.role, self.action)
        if self.unrestricted and principal.restricted:
            raise PermissionDenied(f"a restricted token cannot {self.action}", code="restricted")


# The node itself (not a resource of a workspace): which run protections it enforces maps
# the attack surface, so only an unrestricted admin sees them (``/readyz`` details).
SEE_NODE_PROTECTIONS = Permission("admin", "see this node's run protections", unrestricted=True)

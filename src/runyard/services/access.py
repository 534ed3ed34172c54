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


Access = Literal["read", "write"]
ACCESS_LEVELS: tuple[Access, ...] = ("read", "write")


def access_rank(access: str) -> int:
    return 0 if access == "read" else 1


@dataclass(frozen=True)
class Grant:
    """A token restriction: ``access`` to one namespace, or to one dataset in it. Held by
    id, so renaming a namespace or dataset never moves a token's access elsewhere."""

    namespace_id: str
    dataset_id: str | None
    access: Access

    def reaches(self, namespace_id: str, dataset_id: str | None, access: str) -> bool:
        return (self.namespace_id == namespace_id and access_rank(access) <= access_rank(self.access)
                and (self.dataset_id is None or self.dataset_id == dataset_id))

    def within(self, other: Grant) -> bool:
        """Whether this grant reaches no further than ``other``."""
        return other.reaches(self.namespace_id, self.dataset_id, self.access) and (
            other.dataset_id is None or self.dataset_id is not None)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token of a user. ``role`` is the token's role capped by its
    user's; ``tools`` (tool ids) and ``grants`` only narrow what the user may do (empty:
    no narrowing)."""

    token_id: str
    workspace_id: str
    role: Role
    user_id: str | None = None
    username: str | None = None
    tools: frozenset[str] = field(default_factory=frozenset)  # tool ids; empty = all tools
    grants: tuple[Grant, ...] = ()  # empty = all the data the user may reach
    expires_at: datetime | None = None  # when the key stops working (None: never)

    def require(self, role: Role, action: str) -> None:
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDenied(f"a {self.role} token cannot {action}; it needs the {role} role",
                                   code="insufficient_role", details={"required_role": role})

    @property
    def restricted(self) -> bool:
        """Whether the token is restricted to some tools or data."""
        return bool(self.tools or self.grants)

    def covers(self, tools: Collection[str], grants: Collection[Grant]) -> bool:
        """Whether restrictions ``tools``/``grants`` (empty = all) reach no further than
        this principal's: each dimension it is restricted on must be restricted on too,
        within its own. An unrestricted principal covers everything."""
        if self.tools and (not tools or not set(tools) <= self.tools):
            return False
        return not self.grants or bool(grants) and all(
            any(g.within(mine) for mine in self.grants) for g in grants)

    def can_use_tool(self, tool_id: str) -> bool:
        return not self.tools or tool_id in self.tools

    def can_see_tool(self, tool_id: str, *, public: bool, owner_id: str | None) -> bool:
        """Whether a tool is visible to (so runnable by, role permitting) this key: within
        its tool restriction, and public, its user's own, or seen by an admin. A tool with
        no owner (deployed before owners were recorded) counts as every user's."""
        return self.can_use_tool(tool_id) and (
            public or owner_id is None or owner_id == self.user_id or self.role == "admin")

    def can_change_tool(self, owner_id: str | None) -> bool:
        """Whether this key may change a tool it sees (a new version, rename, delete): its
        owner's keys and admins' (and anyone's, for a tool with no owner)."""
        return owner_id is None or owner_id == self.user_id or self.role == "admin"

    def require_tool(self, tool_id: str, tool_name: str) -> None:
        if not self.can_use_tool(tool_id):
            raise PermissionDenied(f"this token is restricted and cannot use tool {tool_name!r}",
                                   code="restricted", details={"tool": tool_name})

    def grants_allow(self, namespace_id: str, dataset_id: str | None, access: str) -> bool:
        """Whether the token's grants (if any) allow ``access`` to the dataset (or, with
        ``dataset_id`` None, to the namespace as a whole)."""
        return not self.grants or any(g.reaches(namespace_id, dataset_id, access) for g in self.grants)

    def grants_touch(self, namespace_id: str) -> bool:
        """Whether any grant names the namespace (or one of its datasets): it is visible."""
        return not self.grants or any(g.namespace_id == namespace_id for g in self.grants)


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

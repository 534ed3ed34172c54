"""Who may do what. Roles are ordered: viewer < member < admin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from runyard.services.errors import PermissionDenied

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "member", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    token_id: str
    workspace_id: str
    role: Role
    tools: frozenset[str] = field(default_factory=frozenset)       # empty = all tools
    namespaces: frozenset[str] = field(default_factory=frozenset)  # empty = all namespaces

    def require(self, role: Role, action: str) -> None:
        if _RANK[self.role] < _RANK[role]:
            raise PermissionDenied(f"a {self.role} token cannot {action}; it needs the {role} role",
                                   code="insufficient_role", details={"required_role": role})

    def can_use_tool(self, tool_name: str) -> bool:
        return not self.tools or tool_name in self.tools

    def require_tool(self, tool_name: str) -> None:
        if not self.can_use_tool(tool_name):
            raise PermissionDenied(f"this token is restricted and cannot use tool {tool_name!r}",
                                   code="restricted", details={"tool": tool_name})

    def can_use_namespace(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces

    def require_namespace(self, namespace: str) -> None:
        if not self.can_use_namespace(namespace):
            raise PermissionDenied(f"this token is restricted and cannot use namespace {namespace!r}",
                                   code="restricted", details={"namespace": namespace})

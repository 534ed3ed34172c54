"""What schedules, webhooks and email triggers share: their target, and whose they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.errors import NotFound, ValidationFailed
from runyard.services.runs import RunService
from runyard.services.tools import ToolService
from runyard.services.workflow_runs import RUN_WORKFLOWS, WorkflowRuns
from runyard.services.workflows import WorkflowService


@dataclass(frozen=True)
class Target:
    """What a trigger starts: a tool or a workflow, by name."""

    kind: str  # tool | workflow
    name: str

    def view(self) -> dict[str, Any]:
        return {"target_kind": self.kind, "target_name": self.name,
                "tool": self.name if self.kind == "tool" else None,
                "workflow": self.name if self.kind == "workflow" else None}


def parse_target(tool: Any, workflow: Any) -> Target:
    """The target a body names by ``tool`` or ``workflow`` (exactly one)."""
    if (tool is None) == (workflow is None):
        raise ValidationFailed("give either tool or workflow", details={"field": "tool"})
    kind, name = ("tool", tool) if tool is not None else ("workflow", workflow)
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValidationFailed(f"{kind} must be a name", details={"field": kind})
    return Target(kind, name)


def target_of(row: Any) -> Target:
    return Target(row.target_kind, row.target_name)


class Targets:
    """Checking and starting a trigger's target, whichever kind it is."""

    def __init__(self, tools: ToolService, runs: RunService, workflows: WorkflowService,
                 workflow_runs: WorkflowRuns) -> None:
        self.tools = tools
        self.runs = runs
        self.workflows = workflows
        self.workflow_runs = workflow_runs

    def check(self, principal: Principal, target: Target, inputs: Any = None, *, validate: bool = False
              ) -> dict[str, Any]:
        """400 ``invalid_target`` unless the principal can run the target; with ``validate``,
        ``inputs`` checked against its inputs (returned as they will be sent)."""
        inputs = {} if inputs is None else inputs
        try:
            if target.kind == "tool":
                _, version = self.tools.visible(principal, target.name)
                if validate:
                    self.runs.validate_inputs(version, inputs)
                return inputs
            RUN_WORKFLOWS.check(principal)
            wf, version = self.workflows.resolve(principal, target.name)
        except NotFound as exc:
            raise ValidationFailed(f"{target.kind} {target.name!r} not found", code="invalid_target",
                                   details={"field": target.kind, target.kind: target.name}) from exc
        if wf.kind != "workflow":
            raise ValidationFailed(f"{target.name!r} is a block; a block runs only as a step of a workflow",
                                   code="invalid_target", details={"field": "workflow"})
        if validate:
            definition = self.workflows.definition(version)
            if not isinstance(inputs, dict):
                raise ValidationFailed("inputs must be an object", code="invalid_inputs", details={"field": "inputs"})
            errors = definition.input_errors(definition.with_defaults(inputs))
            if errors:
                raise ValidationFailed(f"inputs do not match the workflow's inputs: {'; '.join(errors[:5])}",
                                       code="invalid_inputs", details={"errors": errors})
        return inputs

    def gone(self, principal: Principal, target: Target) -> str | None:
        """Why the target can no longer run (None: it can)."""
        try:
            if target.kind == "tool":
                self.tools.visible(principal, target.name)  # made private by another user: gone for this one
            else:
                self.workflows.resolve(principal, target.name)
        except NotFound:
            return f"{target.kind} {target.name!r} no longer exists"
        return None

    def input_schema(self, principal: Principal, target: Target) -> dict[str, Any]:
        if target.kind == "tool":
            _, version = self.tools.visible(principal, target.name)
            return dict(version.input_schema or {})
        _, version = self.workflows.resolve(principal, target.name)
        return dict(self.workflows.definition(version).inputs)

    def start(self, principal: Principal, target: Target, *, inputs: dict[str, Any], trigger: str, source: str,
              files: dict[str, tuple[str, BinaryIO]] | None = None, by: str | None = None) -> dict[str, Any]:
        """Start a run of the target as ``principal`` for the trigger ``source`` (``by``: the
        run's ``triggered_by`` when not the trigger itself: an email's sender)."""
        if target.kind == "tool":
            run, _ = self.runs.create(principal, tool=target.name, inputs=inputs, trigger=trigger, source=source,
                                      files=files or None, by=by)
        else:
            run, _ = self.workflow_runs.start(principal, workflow=target.name, inputs=inputs, trigger=trigger,
                                              source=source, files=files or None, by=by)
        return run


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

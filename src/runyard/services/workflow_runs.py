"""Workflow runs: a run (``type: workflow``) whose steps are child runs on the same engine.

The state is the database's: a workflow run's row and its children (``parent_run_id``,
``step_id``, ``step_key``). :meth:`WorkflowRuns.advance` reads them, decides what the
definition says comes next (start steps whose needs settled, skip what an ``if`` or a failed
need rules out, finish the run) and writes it. It keeps nothing in memory between calls, so
any node may call it at any time, several at once: a child's ``step_key`` is unique under its
parent (a step is started once, whoever gets there first) and the run ends by one
conditional UPDATE. A child's end, a cancel, an input and a periodic sweep on the workers
(for a node that died between the two) each call it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, BinaryIO

import sqlalchemy as sa

from runyard.events import EventHub
from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.runs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SOURCE_TRIGGERS,
    SUCCEEDED,
    TERMINAL_STATUSES,
    TIMED_OUT,
    TRIGGERS,
    WAITING,
    RunService,
    StepPlacement,
    new_run_row,
    run_view,
)
from runyard.services.users import UserService
from runyard.services.workflows import WorkflowService
from runyard.store.db import Database
from runyard.store.tables import runs
from runyard.timeutil import rfc3339, utcnow
from runyard.workflows import Definition, EvaluationError, ExpressionError, Step

log = logging.getLogger("runyard.workflows")

RESUME_RUNS = Permission("member", "send input to runs")
# A workflow's steps run tools as the caller's user: a key restricted to some tools or data
# cannot start one (its restriction could not follow every step).
RUN_WORKFLOWS = Permission("member", "run workflows", unrestricted=True)
ACTIVE = (QUEUED, RUNNING, WAITING, "awaiting_confirmation")
DEFAULT_MAX_PARALLEL = 100  # a for_each without max_parallel starts at most this many items at once
MAX_PAYLOAD_BYTES = 1_000_000
FILE_MARK = "$file"  # a file input as the expressions see it: {"$file": <input name>, "filename", "size"}


@dataclass
class _StepState:
    status: str = "pending"  # pending | running | waiting | succeeded | failed | skipped
    created: int = 0  # child runs made (items made, for a for_each)
    active: int = 0
    failed: int = 0
    reason: str | None = None


@dataclass
class _Advance:
    """One pass over a workflow run: what its children say, and the context built lazily."""

    row: Any
    definition: Definition
    states: dict[str, _StepState]
    outputs: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None  # built when first needed, dropped when a step settles


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


class WorkflowRuns:
    def __init__(self, db: Database, runs_service: RunService, workflows: WorkflowService, users: UserService,
                 hub: EventHub) -> None:
        self.db = db
        self.runs = runs_service
        self.workflows = workflows
        self.users = users
        self.hub = hub
        self._outputs: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._outputs_lock = threading.Lock()
        runs_service.workflow_runs = self  # cancel, input and artifacts of workflow runs come here

    # -- starting --------------------------------------------------------------------------
    def start(self, principal: Principal, *, workflow: str, version: int | str | None = None,
              inputs: dict[str, Any] | None = None, tags: dict[str, Any] | None = None, trigger: str = "api",
              source: str | None = None, idempotency_key: str | None = None,
              files: dict[str, tuple[str, BinaryIO]] | None = None,
              step: StepPlacement | None = None, parent_run_id: str | None = None,
              kinds: tuple[str, ...] = ("workflow",), by: str | None = None) -> tuple[dict[str, Any], bool]:
        """Start a run of a workflow's published version (the latest unless ``version``, a
        number or a tag). Returns (run, created)."""
        RUN_WORKFLOWS.check(principal)
        if trigger not in TRIGGERS or (trigger in SOURCE_TRIGGERS and source is None):
            raise ValidationFailed("trigger must be one of api, sdk, cli", details={"field": "trigger"})
        tags = self.runs.check_tags(tags)
        inputs = {} if inputs is None else inputs
        if not isinstance(inputs, dict):
            raise ValidationFailed("inputs must be an object", code="invalid_inputs", details={"field": "inputs"})
        if step is not None and parent_run_id is not None:
            self._check_depth(parent_run_id)
        wf, ver = self.workflows.resolve(principal, workflow, version)
        if wf.kind not in kinds:
            raise ValidationFailed(f"{wf.name!r} is a {wf.kind}; a {wf.kind} runs only as a step of a workflow",
                                   code="not_runnable", details={"workflow": wf.name})
        definition = self.workflows.definition(ver)
        request_hash = None
        if idempotency_key is not None:
            request_hash = digest(["workflow", workflow, version, inputs, tags, sorted(files or {})])
            replay = self.runs.replay(principal.workspace_id, idempotency_key, request_hash)
            if replay is not None:
                return replay, False
        file_names = set(files or {}) | set(step.files if step else {})
        unknown_files = file_names - set(definition.file_inputs)
        if unknown_files:
            raise ValidationFailed(f"not a file input of {wf.name!r}: {', '.join(sorted(unknown_files))}",
                                   code="invalid_inputs", details={"fields": sorted(unknown_files)})
        values = definition.with_defaults(inputs)
        probe = {**values, **{k: f"/inputs/{k}" for k in file_names}}
        errors = definition.input_errors(probe)
        if errors:
            raise ValidationFailed(f"inputs do not match the workflow's inputs: {'; '.join(errors[:5])}",
                                   code="invalid_inputs", details={"errors": errors})
        run_id = new_id("run")
        input_files = {**(step.files if step else {}), **self.runs.store_files(run_id, files or {})}
        now = utcnow()
        row = new_run_row(
            id=run_id, workspace_id=principal.workspace_id, tool_id=wf.id, tool_name=wf.name,
            tool_version=ver.version, tool_version_id=ver.id, type="workflow", status=RUNNING, inputs=values,
            input_files=input_files, tags=tags, trigger=trigger,
            triggered_by=(by or source) if trigger in SOURCE_TRIGGERS else principal.user_id,
            token_id=None if trigger in SOURCE_TRIGGERS else principal.token_id, user_id=principal.user_id,
            parent_run_id=parent_run_id, idempotency_key=idempotency_key, request_hash=request_hash,
            created_at=now, queued_at=now, started_at=now,
            step_id=step.step_id if step else None, step_key=step.step_key if step else None,
            item_index=step.item_index if step else None)
        try:
            with self.db.write() as conn:
                conn.execute(runs.insert().values(**row))
        except sa.exc.IntegrityError:
            self.runs.files.delete(run_id)
            if step is not None:
                existing = self.runs.step_run(parent_run_id or "", step.step_key)
                if existing is not None:
                    return run_view(existing), False
            if idempotency_key is not None and request_hash is not None:
                replay = self.runs.replay(principal.workspace_id, idempotency_key, request_hash)
                if replay is not None:
                    return replay, False
            raise
        self.advance(run_id)
        return run_view(self.runs.row(principal.workspace_id, run_id)), True

    def _check_depth(self, parent_run_id: str) -> None:
        """Refuse a nested run deeper than the limit. Checked at save too; this holds whatever
        the versions and tags the nested workflows resolve to by the time they run."""
        depth, current = 0, parent_run_id
        with self.db.read() as conn:
            while current is not None:
                depth += 1
                if depth > self.workflows.max_depth:
                    raise ValidationFailed(f"more than {self.workflows.max_depth} levels of nested workflows",
                                           code="nesting_too_deep")
                current = conn.execute(sa.select(runs.c.parent_run_id).where(
                    runs.c.id == current, runs.c.step_id.is_not(None))).scalar()

    # -- the state machine -----------------------------------------------------------------
    def advance(self, run_id: str) -> str | None:
        """Move a workflow run on as far as its children allow; returns its status after."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None or row.type != "workflow":
            return None
        if row.status in TERMINAL_STATUSES:
            return row.status
        try:
            definition = self.workflows.definition_by_version_id(row.tool_version_id)
        except Exception as exc:  # a stored definition that no longer parses: the run cannot go on
            log.exception("workflow run %s: its definition could not be read", run_id)
            return self._end(row, FAILED, None, {"type": "invalid_workflow", "message": str(exc), "traceback": None})
        owner = self._owner(row)
        if isinstance(owner, str):
            self.cancel_children(row)
            return self._end(row, FAILED, None, {"type": "owner_revoked", "message": owner, "traceback": None})
        state = _Advance(row, definition, self._states(row, definition))
        for _ in range(len(definition.steps) + 2):  # each pass settles at least one step or stops
            if not self._step(state, owner):
                break
        return self._settle(state)

    def _states(self, row: Any, definition: Definition) -> dict[str, _StepState]:
        """Each step's state from its children (counts only: bounded for a 100,000-item for_each)."""
        states = {s.id: _StepState() for s in definition.steps}
        with self.db.read() as conn:
            counts = conn.execute(
                sa.select(runs.c.step_id, runs.c.status, sa.func.count())
                .where(runs.c.parent_run_id == row.id, runs.c.step_id.is_not(None))
                .group_by(runs.c.step_id, runs.c.status)).all()
        for step_id, status, count in counts:
            state = states.get(step_id)
            if state is None:
                continue
            state.created += count
            if status in ACTIVE:
                state.active += count
                if status == WAITING:
                    state.status = "waiting"
            elif status != SUCCEEDED:
                state.failed += count
        for step in definition.steps:
            state = states[step.id]
            if state.created == 0:
                continue
            if state.active:
                if state.status != "waiting":
                    state.status = "running"
                continue
            if step.for_each is not None and not state.failed:
                state.status = "running"  # it may have items left to start: _step decides
                continue
            state.status = FAILED if state.failed else SUCCEEDED
        return states

    def _sets(self, state: _Advance) -> tuple[set[str], set[str], set[str], set[str]]:
        done = {k for k, v in state.states.items() if v.status == SUCCEEDED}
        failed = {k for k, v in state.states.items() if v.status == FAILED}
        skipped = {k for k, v in state.states.items() if v.status == "skipped"}
        running = {k for k, v in state.states.items() if v.status in ("running", "waiting")}
        return done, failed, skipped, running

    def _step(self, state: _Advance, owner: Principal) -> bool:
        """Start or skip what is ready; True when a step settled in this pass (look again)."""
        definition = state.definition
        graph = definition.graph
        settled_now = False
        # for_each steps already started: start more items, or settle them.
        for step in definition.steps:
            st = state.states[step.id]
            if step.for_each is not None and st.status == "running" and st.created and not st.failed \
                    and self._more_items(state, step, owner):
                settled_now = True
        done, failed, skipped, running = self._sets(state)
        ready = graph.ready(done, failed, skipped, running)
        for step_id, reason in ready.skip.items():
            state.states[step_id].status = "skipped"
            state.states[step_id].reason = reason
            settled_now = True
            state.context = None
        for step_id in ready.run:
            if state.states[step_id].status != "pending":
                continue
            step = definition.step(step_id)
            try:
                context = self._context(state)
                run_it = step.should_run(context)
            except (EvaluationError, ExpressionError) as exc:
                self._fail_step(state, step, owner, "expression_error", f"if: {exc}")
                settled_now = True
                continue
            if not run_it:
                state.states[step_id].status = "skipped"
                state.states[step_id].reason = "its if was false"
                settled_now = True
                state.context = None
                continue
            if step.for_each is not None:
                settled_now |= self._more_items(state, step, owner)
            else:
                settled_now |= self._launch(state, step, owner, item_index=None, item=None)
        return settled_now

    def _more_items(self, state: _Advance, step: Step, owner: Principal) -> bool:
        """Start the next items of a for_each (up to max_parallel at once); True if it settled."""
        st = state.states[step.id]
        try:
            items = step.items(self._context(state))
        except (EvaluationError, ExpressionError) as exc:
            if st.created:
                raise
            self._fail_step(state, step, owner, "expression_error", f"for_each: {exc}")
            return True
        if st.created >= len(items):
            if not st.active:
                st.status = SUCCEEDED
                state.context = None
                return True
            return False
        limit = step.max_parallel or DEFAULT_MAX_PARALLEL
        settled = False
        start = st.created
        for index in range(start, min(len(items), start + max(0, limit - st.active))):
            settled |= self._launch(state, step, owner, item_index=index, item=items[index])
            if st.failed:
                break
        if st.status == "pending":
            st.status = "running"
        return settled

    def _launch(self, state: _Advance, step: Step, owner: Principal, *, item_index: int | None, item: Any) -> bool:
        """Create one child run for a step (or one item of it); True if that settled the step
        at once (it failed before it could start)."""
        st = state.states[step.id]
        key = step.id if item_index is None else f"{step.id}[{item_index}]"
        try:
            context = self._context(state)
            with_ = step.render_with(context) if item_index is None else step.render_with(context, item=item)
        except (EvaluationError, ExpressionError) as exc:
            return self._fail_step(state, step, owner, "expression_error", f"with: {exc}", item_index=item_index)
        inputs, files = self._split_files(state.row, with_)
        policy: dict[str, Any] = {}
        if step.timeout is not None:
            policy["timeout_s"] = float(step.timeout)
        if step.retries:
            policy.update(max_attempts=step.retries + 1, retry_on=["error", "timeout", "worker_lost"],
                          retry_backoff_s=float(step.retry_backoff_s))
        placement = StepPlacement(step_id=step.id, step_key=key, item_index=item_index, policy=policy or None,
                                  files=files)
        st.created += 1
        st.active += 1
        try:
            if step.kind == "wait_for_input":
                self._wait_for_input(state.row, step, placement, inputs)
            elif step.uses is not None and step.uses.kind != "tool":
                self.start(owner, workflow=step.uses.name, version=step.uses.ref, inputs=inputs, trigger="workflow",
                           source=state.row.id, step=placement, parent_run_id=state.row.id,
                           kinds=("workflow", "block"))
            else:
                assert step.uses is not None
                if step.uses.tag is not None:
                    raise NotFound(f"tool {step.uses} not found: tools have no tags", code="tool_not_found")
                self.runs.create(owner, tool=step.uses.name, version=step.uses.version, inputs=inputs,
                                 trigger="workflow", source=state.row.id, parent_run_id=state.row.id,
                                 step=placement, tags=state.row.tags or None)
        except DomainError as exc:
            st.created -= 1
            st.active -= 1
            return self._fail_step(state, step, owner, exc.code, exc.message, item_index=item_index)
        return False

    def _split_files(self, row: Any, with_: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A step's inputs, and the workflow's input files it passes on (by reference)."""
        inputs: dict[str, Any] = {}
        files: dict[str, Any] = {}
        stored = row.input_files or {}
        for key, value in with_.items():
            if isinstance(value, dict) and FILE_MARK in value and value[FILE_MARK] in stored:
                files[key] = stored[value[FILE_MARK]]
            else:
                inputs[key] = value
        return inputs, files

    def _wait_for_input(self, row: Any, step: Step, placement: StepPlacement, request: dict[str, Any]) -> None:
        now = utcnow()
        child = new_run_row(
            id=new_id("run"), workspace_id=row.workspace_id, tool_id=row.tool_id, tool_name=row.tool_name,
            tool_version=row.tool_version, tool_version_id=row.tool_version_id, type="input", status=WAITING,
            inputs=request, tags=row.tags or {}, trigger="workflow", triggered_by=row.id, user_id=row.user_id,
            parent_run_id=row.id, created_at=now, queued_at=now, started_at=now, step_id=placement.step_id,
            step_key=placement.step_key, item_index=placement.item_index,
            # The wait's deadline (a waiting run has no lease: nothing holds it).
            lease_expires_at=now + timedelta(seconds=step.timeout) if step.timeout else None)
        try:
            with self.db.write() as conn:
                conn.execute(runs.insert().values(**child))
        except sa.exc.IntegrityError:
            return  # another node made it first

    def _fail_step(self, state: _Advance, step: Step, owner: Principal, code: str, message: str,
                   item_index: int | None = None) -> bool:
        """Record a step that could not start (its tool is gone, its inputs do not fit, an
        expression failed) as a failed child run, so the trace and the rules see it."""
        row = state.row
        now = utcnow()
        key = step.id if item_index is None else f"{step.id}[{item_index}]"
        name = step.uses.name if step.uses is not None else step.id
        child = new_run_row(
            id=new_id("run"), workspace_id=row.workspace_id, tool_id="", tool_name=name[:64], tool_version=0,
            tool_version_id="", type="input" if step.kind == "wait_for_input" else "tool", status=FAILED,
            inputs={}, tags=row.tags or {}, trigger="workflow", triggered_by=row.id, user_id=row.user_id,
            parent_run_id=row.id, created_at=now, finished_at=now, step_id=step.id, step_key=key,
            item_index=item_index, error={"type": code or "step_failed", "message": message, "traceback": None})
        try:
            with self.db.write() as conn:
                conn.execute(runs.insert().values(**child))
        except sa.exc.IntegrityError:
            pass  # recorded by another node
        st = state.states[step.id]
        st.created += 1
        st.failed += 1
        if not st.active:
            st.status = FAILED
            state.context = None
            return True
        return False

    # -- context ---------------------------------------------------------------------------
    def _context(self, state: _Advance) -> dict[str, Any]:
        if state.context is not None:
            return state.context
        steps: dict[str, Any] = {}
        for step in state.definition.steps:
            st = state.states[step.id]
            if st.status in (SUCCEEDED, FAILED):
                steps[step.id] = {"output": self._output(state, step), "status": st.status}
            elif st.status == "skipped":
                steps[step.id] = {"output": None, "status": "skipped"}
        inputs = dict(state.row.inputs or {})
        for key, meta in (state.row.input_files or {}).items():
            inputs[key] = {FILE_MARK: key, "filename": meta.get("filename"), "size": meta.get("size")}
        state.context = {"inputs": inputs, "steps": steps}
        return state.context

    def _output(self, state: _Advance, step: Step) -> Any:
        if step.id in state.outputs:
            return state.outputs[step.id]
        key = (state.row.id, step.id)
        with self._outputs_lock:
            if key in self._outputs:  # a settled step's output never changes
                self._outputs.move_to_end(key)
                state.outputs[step.id] = self._outputs[key]
                return state.outputs[step.id]
        with self.db.read() as conn:
            rows = conn.execute(sa.select(runs.c.item_index, runs.c.output, runs.c.status)
                                .where(runs.c.parent_run_id == state.row.id, runs.c.step_id == step.id)
                                .order_by(runs.c.item_index)).all()
        if step.for_each is not None:
            value: Any = [r.output if r.status == SUCCEEDED else None for r in rows]
        else:
            value = rows[0].output if rows and rows[0].status == SUCCEEDED else None
        state.outputs[step.id] = value
        with self._outputs_lock:
            self._outputs[key] = value
            while len(self._outputs) > 1024:
                self._outputs.popitem(last=False)
        return value

    # -- ending ----------------------------------------------------------------------------
    def _settle(self, state: _Advance) -> str:
        row = state.row
        graph = state.definition.graph
        done, failed, skipped, running = self._sets(state)
        outcome = graph.outcome(done, failed, skipped)
        if outcome == "running":
            waiting = any(v.status == "waiting" for v in state.states.values())
            want = WAITING if waiting and not any(v.status == "running" for v in state.states.values()) else RUNNING
            if want != row.status:
                with self.db.write() as conn:
                    conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status.in_([RUNNING, WAITING]))
                                 .values(status=want))
            return want
        if outcome == SUCCEEDED:
            try:
                output = state.definition.render_outputs(self._context(state))
            except (EvaluationError, ExpressionError) as exc:
                return self._end(row, FAILED, None, {"type": "expression_error", "message": f"outputs: {exc}",
                                                     "traceback": None})
            return self._end(row, SUCCEEDED, output, None)
        first = next(s.id for s in state.definition.steps
                     if s.id in failed and s.id not in graph.continue_on_error)
        error = self._step_error(row.id, first)
        return self._end(row, FAILED, None, {
            "type": "step_failed", "message": f"step {first!r} failed: {error.get('message') or error.get('type')}",
            "traceback": None, "step_id": first, "step_error": error})

    def _step_error(self, run_id: str, step_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            found = conn.execute(sa.select(runs.c.error, runs.c.status).where(
                runs.c.parent_run_id == run_id, runs.c.step_id == step_id, runs.c.status != SUCCEEDED,
            ).order_by(runs.c.item_index).limit(1)).first()
        if found is None:
            return {"type": "step_failed", "message": "failed"}
        return dict(found.error or {"type": found.status, "message": found.status})

    def _end(self, row: Any, status: str, output: Any, error: dict[str, Any] | None) -> str:
        now = utcnow()
        with self.db.write() as conn:
            won = conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status.in_([RUNNING, WAITING]))
                               .values(status=status, output=output, error=error, finished_at=now,
                                       lease_expires_at=None)).rowcount
        if won:
            self.hub.publish(f"run.done:{row.id}", status)
            if row.parent_run_id and row.step_id:
                self.hub.publish("workflow.advance", row.parent_run_id)
        return status

    # -- acting as the workflow's user -----------------------------------------------------
    def _owner(self, row: Any) -> Principal | str:
        """The principal the steps run as (the user who started the run), or why none."""
        return self.users.acting_as(row.workspace_id, row.user_id, on_behalf_of=row.id,
                                    whose="the user who started the workflow")

    # -- people and cancellation -----------------------------------------------------------
    def send_input(self, principal: Principal, run_id: str, payload: Any, step_id: str | None = None
                   ) -> dict[str, Any]:
        """End a wait: ``run_id`` is the waiting step's run or its workflow run (``step_id``
        chooses among several waiting steps)."""
        RESUME_RUNS.check(principal)
        row = self.runs.visible_row(principal, run_id)
        if len(json.dumps(payload, default=str)) > MAX_PAYLOAD_BYTES:
            raise ValidationFailed(f"payload is at most {MAX_PAYLOAD_BYTES} bytes of JSON", details={"field": "payload"})
        if row.type == "workflow":
            with self.db.read() as conn:
                query = sa.select(runs).where(runs.c.parent_run_id == row.id, runs.c.status == WAITING)
                if step_id is not None:
                    query = query.where(runs.c.step_id == step_id)
                waiting = conn.execute(query.order_by(runs.c.id).limit(2)).all()
            if not waiting:
                raise Conflict("no step of this run waits for input" + (f" as {step_id!r}" if step_id else ""),
                               code="invalid_state", details={"status": row.status})
            if len(waiting) > 1:
                raise ValidationFailed("several steps wait for input; give step_id",
                                       details={"field": "step_id", "steps": [w.step_id for w in waiting]})
            target = waiting[0]
        elif row.type == "input":
            target = row
        else:
            raise Conflict("this run does not wait for input", code="invalid_state", details={"status": row.status})
        with self.db.write() as conn:
            done = conn.execute(runs.update().where(runs.c.id == target.id, runs.c.status == WAITING).values(
                status=SUCCEEDED, output=payload, finished_at=utcnow(), lease_expires_at=None)).rowcount
        if not done:
            raise Conflict("the step no longer waits for input", code="invalid_state")
        self.hub.publish(f"run.done:{target.id}", SUCCEEDED)
        self.advance(target.parent_run_id)
        return run_view(self.runs.row(principal.workspace_id, row.id))

    def expire_waits(self) -> int:
        """Fail the waits whose timeout passed (``timed_out``) and move their workflows on."""
        now = utcnow()
        with self.db.read() as conn:
            expired = conn.execute(sa.select(runs.c.id, runs.c.parent_run_id).where(
                runs.c.status == WAITING, runs.c.type == "input", runs.c.lease_expires_at < now)).all()
        count = 0
        for row in expired:
            with self.db.write() as conn:
                done = conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status == WAITING).values(
                    status=TIMED_OUT, finished_at=now, lease_expires_at=None,
                    error={"type": "timed_out", "message": "no input came before the step's timeout",
                           "traceback": None})).rowcount
            if done:
                count += 1
                self.hub.publish(f"run.done:{row.id}", TIMED_OUT)
                self.advance(row.parent_run_id)
        return count

    def cancel(self, row: Any) -> None:
        """Cancel a workflow run and, through it, every step still going."""
        now = utcnow()
        with self.db.write() as conn:
            done = conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status.in_([RUNNING, WAITING]))
                                .values(status=CANCELLED, finished_at=now, cancel_requested=True, error={
                                    "type": "cancelled", "message": "cancelled by request", "traceback": None}))
        if done.rowcount:
            self.hub.publish(f"run.done:{row.id}", CANCELLED)
        self.cancel_children(row)
        if done.rowcount and row.parent_run_id and row.step_id:
            self.hub.publish("workflow.advance", row.parent_run_id)

    def cancel_children(self, row: Any) -> None:
        with self.db.read() as conn:
            children = conn.execute(sa.select(runs).where(runs.c.parent_run_id == row.id,
                                                          runs.c.step_id.is_not(None),
                                                          runs.c.status.in_(ACTIVE))).all()
        for child in children:
            if child.type == "workflow":
                self.cancel(child)
            else:
                self.runs.cancel_row(child)

    # -- reading ---------------------------------------------------------------------------
    def trace(self, principal: Principal, run_id: str) -> list[dict[str, Any]]:
        """The step timeline: each step run (start, end, status, attempt, duration, input and
        output digests), and the steps that were skipped or have not started."""
        row = self.runs.visible_row(principal, run_id)
        if row.type != "workflow":
            raise ValidationFailed("a trace of steps is kept for workflow runs", code="not_a_workflow_run")
        definition = self.workflows.definition_by_version_id(row.tool_version_id)
        with self.db.read() as conn:
            children = conn.execute(sa.select(runs).where(runs.c.parent_run_id == row.id,
                                                          runs.c.step_id.is_not(None))
                                    .order_by(runs.c.created_at, runs.c.id)).all()
        seen = {c.step_id for c in children}
        items = []
        for child in children:
            duration = None
            if child.started_at is not None and child.finished_at is not None:
                duration = round((child.finished_at - child.started_at).total_seconds() * 1000, 3)
            items.append({"step_id": child.step_id, "item_index": child.item_index, "run_id": child.id,
                          "type": child.type, "status": child.status, "attempt": child.attempt,
                          "started_at": rfc3339(child.started_at), "finished_at": rfc3339(child.finished_at),
                          "duration_ms": duration, "input_digest": digest(child.inputs),
                          "output_digest": digest(child.output) if child.status == SUCCEEDED else None,
                          "error": child.error})
        if row.status in TERMINAL_STATUSES:
            states = {s.id: "skipped" for s in definition.steps}
        else:
            states = {s.id: "pending" for s in definition.steps}
        for step in definition.steps:
            if step.id not in seen:
                items.append({"step_id": step.id, "item_index": None, "run_id": None, "type": None,
                              "status": states[step.id], "attempt": None, "started_at": None, "finished_at": None,
                              "duration_ms": None, "input_digest": None, "output_digest": None, "error": None})
        return items

    def definition_of(self, principal: Principal, run_id: str) -> dict[str, Any]:
        row = self.runs.visible_row(principal, run_id)
        if row.type != "workflow":
            raise ValidationFailed("only a workflow run has a definition", code="not_a_workflow_run")
        version = self.workflows.version_by_id(row.tool_version_id)
        return {"object": "workflow_definition", "run_id": row.id, "workflow_id": row.tool_id,
                "workflow_name": row.tool_name, "version": row.tool_version, "source": version.source,
                "definition": version.definition}

    def sweep(self, limit: int = 200) -> int:
        """Advance workflow runs that are going (a node may have died between a step's end and
        the advance it owed), and end expired waits."""
        count = self.expire_waits()
        with self.db.read() as conn:
            ids = conn.execute(sa.select(runs.c.id).where(runs.c.type == "workflow",
                                                          runs.c.status.in_([RUNNING, WAITING]))
                               .order_by(runs.c.id).limit(limit)).scalars().all()
        for run_id in ids:
            try:
                self.advance(run_id)
                count += 1
            except Exception:
                log.exception("advancing workflow run %s failed", run_id)
        return count




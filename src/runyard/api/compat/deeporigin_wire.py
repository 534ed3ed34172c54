"""DeepOrigin's words for runyard's runs: status words both ways, the tools-service execution
DTO (camelCase) and the data-platform row (snake_case) built from a run, and the list's
``order``/``filter`` query parameters read into RunService.list's filters.

One run is both of DeepOrigin's records: its id is the tools-service ``executionId``, the
data-platform row's ``id`` and that row's ``compute_job_id`` alike (docs/compat.md).
"""

from __future__ import annotations

import json
from typing import Any

from runyard.services.errors import ValidationFailed
from runyard.timeutil import parse_rfc3339

CLUSTER_ID = "runyard"  # the one "cluster" an execution runs on: the workspace's workers
MAX_PAGE_SIZE = 10_000  # DeepOrigin's documented page size limit
DEFAULT_PAGE_SIZE = 100

# runyard status -> DeepOrigin status. A run awaiting confirmation is DeepOrigin's quoted
# execution (confirm starts it); a timed-out run is Failed (runyardStatus says which).
STATUS_OF = {
    "awaiting_confirmation": "Quoted",
    "queued": "Queued",
    "running": "Running",
    "waiting_for_input": "Running",
    "succeeded": "Completed",
    "failed": "Failed",
    "timed_out": "Failed",
    "cancelled": "Cancelled",
}
# DeepOrigin status -> the runyard statuses it stands for (none: no run is ever in it).
RUNYARD_STATUSES = {
    "Quoted": ["awaiting_confirmation"],
    "Created": [],
    "Queued": ["queued"],
    "Running": ["running", "waiting_for_input"],
    "Completed": ["succeeded"],
    "Succeeded": ["succeeded"],  # DeepOrigin's legacy word for Completed
    "Failed": ["failed", "timed_out"],
    "Cancelled": ["cancelled"],
    "InsufficientFunds": [],
    "FailedQuotation": [],
}

# The list's ``order`` fields (``"createdAt? desc"``) -> RunService.list's sorts.
ORDER_FIELDS = {"executionId": "created_at", "createdAt": "created_at", "startedAt": "started_at",
                "completedAt": "finished_at"}
# The list's ``filter`` keys the compat layer reads.
FILTER_KEYS = ("tool", "session", "projectId", "createdAt", "status")


def runyard_statuses(word: Any, field: str = "status") -> list[str]:
    if not isinstance(word, str) or word not in RUNYARD_STATUSES:
        raise ValidationFailed(f"unknown status {word!r}; known: {', '.join(RUNYARD_STATUSES)}",
                               details={"field": field, "allowed": list(RUNYARD_STATUSES)})
    return RUNYARD_STATUSES[word]


def execution_dto(run: dict[str, Any]) -> dict[str, Any]:
    """The tools-service execution DTO of a run (``run_view``'s dict, inputs expanded or not)."""
    tags = run.get("tags") or {}
    dto: dict[str, Any] = {
        "executionId": run["id"],
        "status": STATUS_OF.get(run["status"], run["status"]),
        "statusReason": run.get("error"),
        "tool": {"key": run["tool_name"], "version": str(run["tool_version"]), "id": run["tool_id"]},
        "jobOutputs": run.get("output"),
        "progressReport": run.get("progress"),
        "projectId": tags.get("project"),
        "session": tags.get("session"),
        "app": tags.get("app"),
        "clusterId": CLUSTER_ID,
        "approveAmount": None,
        "createdBy": run.get("triggered_by"),
        "createdAt": run.get("created_at"),
        "startedAt": run.get("started_at"),
        "completedAt": run.get("finished_at"),
        "attempt": run.get("attempt"),
        "workerId": run.get("worker_id"),
        "runyardStatus": run["status"],
    }
    if run.get("inputs") is not None:
        dto["userInputs"] = run["inputs"]
    return dto


def order_of(text: str | None) -> tuple[str, str]:
    """``"completedAt? desc"`` -> (RunService.list sort, order); default newest first."""
    if text is None or not text.strip():
        return "created_at", "desc"
    parts = text.replace("?", " ").split()
    field = parts[0]
    direction = parts[1].lower() if len(parts) > 1 else "asc"
    if field not in ORDER_FIELDS or direction not in ("asc", "desc") or len(parts) > 2:
        raise ValidationFailed(f"order must be '<field>? asc|desc' with field one of {', '.join(ORDER_FIELDS)}",
                               details={"field": "order", "allowed": list(ORDER_FIELDS)})
    return ORDER_FIELDS[field], direction


def list_filters(text: str | None) -> dict[str, Any]:
    """The list's ``filter`` JSON -> RunService.list keyword filters (``project`` among them)."""
    if text is None or not text.strip():
        return {}
    try:
        given = json.loads(text)
    except ValueError as exc:
        raise ValidationFailed("filter must be a JSON object", details={"field": "filter"}) from exc
    if not isinstance(given, dict):
        raise ValidationFailed("filter must be a JSON object", details={"field": "filter"})
    unknown = sorted(set(given) - set(FILTER_KEYS))
    if unknown:
        raise ValidationFailed(f"unknown filter key(s): {', '.join(unknown)}; served: {', '.join(FILTER_KEYS)}",
                               details={"field": "filter", "allowed": list(FILTER_KEYS)})
    out: dict[str, Any] = {}
    if "tool" in given:
        tool = given["tool"]
        key = tool.get("toolManifest", {}).get("key") if isinstance(tool, dict) else None
        if not isinstance(key, str) or not key or set(tool) != {"toolManifest"} or set(tool["toolManifest"]) != {"key"}:
            raise ValidationFailed('filter.tool must be {"toolManifest": {"key": "<tool>"}}',
                                   details={"field": "filter.tool"})
        out["tool"] = key
    for key, name in (("session", "session"), ("projectId", "project")):
        if key in given:
            if not isinstance(given[key], str):
                raise ValidationFailed(f"filter.{key} must be a string", details={"field": f"filter.{key}"})
            out[name] = given[key]
    if "status" in given:
        words = given["status"]
        if isinstance(words, dict) and set(words) == {"$in"} and isinstance(words["$in"], list):
            words = words["$in"]
        words = words if isinstance(words, list) else [words]
        out["statuses"] = sorted({s for w in words for s in runyard_statuses(w, "filter.status")})
    if "createdAt" in given:
        out.update(_created_bounds(given["createdAt"]))
    return out


def _created_bounds(bounds: Any) -> dict[str, Any]:
    ops = {"$gt": "created_after", "$lt": "created_before"}
    if not isinstance(bounds, dict) or not bounds or set(bounds) - set(ops):
        raise ValidationFailed('filter.createdAt must be {"$gt": <time>} and/or {"$lt": <time>}',
                               details={"field": "filter.createdAt"})
    out = {}
    for op, value in bounds.items():
        try:
            when = parse_rfc3339(value) if isinstance(value, str) else None
        except ValueError:
            when = None
        if when is None:
            raise ValidationFailed(f"filter.createdAt.{op} must be an RFC 3339 time",
                                   details={"field": f"filter.createdAt.{op}"})
        out[ops[op]] = when
    return out


def list_props(filters: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The list's filters as run-search conditions; None when no run can match (a status
    word no runyard run is ever in)."""
    props: list[dict[str, Any]] = []
    if "tool" in filters:
        tool = filters["tool"]
        props.append({"field": "tool_id" if tool.startswith("tool_") else "tool_name", "op": "eq", "value": tool})
    for name in ("session", "project"):
        if name in filters:
            props.append({"field": name, "op": "eq", "value": filters[name]})
    if "statuses" in filters:
        if not filters["statuses"]:
            return None
        props.append({"field": "status", "op": "in", "value": filters["statuses"]})
    for name, op in (("created_after", "gt"), ("created_before", "lt")):
        if name in filters:
            props.append({"field": "created_at", "op": op, "value": filters[name].isoformat()})
    return props


# -- the data platform's rows --------------------------------------------------------------------
# Row column -> the run-search field it is (``compute_metadata.userInputs.<name>`` -> inputs).
SEARCH_FIELDS = {
    "id": "id", "compute_job_id": "id", "tool_key": "tool_name", "tool_id": "tool_id",
    "tool_version": "tool_version", "status": "status", "runyard_status": "status", "project_id": "project",
    "session": "session", "tags.session": "session", "app": "app", "tags.app": "app",
    "created_at": "created_at", "started_at": "started_at", "completed_at": "finished_at",
    "worker_id": "worker_id", "attempt": "attempt", "created_by": "triggered_by",
}
USER_INPUTS = "compute_metadata.userInputs."
ROW_COLUMNS = ("id", "compute_job_id", "tool_key", "tool_version", "tool_id", "status", "runyard_status",
               "status_reason", "project_id", "tags", "compute_metadata", "outputs", "progress", "cluster_id",
               "worker_id", "attempt", "created_by", "created_at", "started_at", "completed_at")


def platform_row(run: dict[str, Any]) -> dict[str, Any]:
    """The data platform's snake_case row of a run (a run view, or a run-search item)."""
    tags = run.get("tags") or {}
    return {
        "id": run["id"], "compute_job_id": run["id"], "tool_key": run["tool_name"],
        "tool_version": str(run["tool_version"]), "tool_id": run["tool_id"],
        "status": STATUS_OF.get(run["status"], run["status"]), "runyard_status": run["status"],
        "status_reason": run.get("error"), "project_id": tags.get("project"),
        "tags": {"app": tags.get("app"), "session": tags.get("session")},
        "compute_metadata": {"userInputs": run.get("inputs")}, "outputs": run.get("output"),
        "progress": run.get("progress"), "cluster_id": CLUSTER_ID, "worker_id": run.get("worker_id"),
        "attempt": run.get("attempt"), "created_by": run.get("triggered_by"), "created_at": run.get("created_at"),
        "started_at": run.get("started_at"), "completed_at": run.get("finished_at"),
    }


def selected_columns(select: list[str] | None) -> list[str] | None:
    if select is None:
        return None
    unknown = [c for c in select if c not in ROW_COLUMNS]
    if unknown:
        raise ValidationFailed(f"unknown select column(s): {', '.join(unknown)}; allowed: {', '.join(ROW_COLUMNS)}",
                               code="unknown_search_field", details={"field": "select", "allowed": list(ROW_COLUMNS)})
    return list(dict.fromkeys(select))


def project(row: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
    return row if selected is None else {c: row[c] for c in selected}


def search_props(given: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """DeepOrigin's ``{column, op, value}`` props as run-search conditions; None when no run
    can match (a status word no runyard run is ever in)."""
    props = []
    for index, prop in enumerate(given):
        where = f"filter.props[{index}]"
        if not isinstance(prop, dict) or set(prop) - {"column", "op", "value"} or "column" not in prop:
            raise ValidationFailed(f"{where} must be {{column, op, value}}", details={"field": where})
        column, op, value = prop["column"], prop.get("op", "eq"), prop.get("value")
        if isinstance(column, str) and column.startswith(USER_INPUTS) and len(column) > len(USER_INPUTS):
            props.append({"field": "inputs." + column[len(USER_INPUTS):], "op": op, "value": value})
            continue
        if not isinstance(column, str) or column not in SEARCH_FIELDS:
            raise ValidationFailed(
                f"{where}: unknown column {str(column)[:100]!r}; searchable: {', '.join(SEARCH_FIELDS)}, "
                f"{USER_INPUTS}<name>", code="unknown_search_field",
                details={"field": f"{where}.column", "allowed": [*SEARCH_FIELDS, USER_INPUTS + "<name>"]})
        field = SEARCH_FIELDS[column]
        if column == "status":
            statuses = _status_values(op, value, where)
            if not statuses and op in ("eq", "in"):
                return None
            if statuses:
                props.append({"field": "status", "op": "in" if op in ("eq", "in") else "nin", "value": statuses})
            continue
        if column == "tool_version" and isinstance(value, str) and value.isdigit() and len(value) <= 9:
            value = int(value)
        props.append({"field": field, "op": op, "value": value})
    return props


def _status_values(op: Any, value: Any, where: str) -> list[str]:
    if op in ("eq", "neq"):
        return runyard_statuses(value, f"{where}.value")
    if op in ("in", "nin") and isinstance(value, list):
        return sorted({s for word in value for s in runyard_statuses(word, f"{where}.value")})
    raise ValidationFailed(f"{where}: status takes eq, neq, in or nin (DeepOrigin's status words)",
                           details={"field": f"{where}.op"})

"""Tools: a named, versioned Python entrypoint. Every code/config change is a new version."""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from runyard.ids import looks_like_id, new_id
from runyard.schemas import parse
from runyard.schemas.tools import ToolConfig
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.tool_source import (
    ToolSource,
    from_code,
    from_upload,
    materialise,
    script_from_code,
    script_from_upload,
)
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.rows import split_joined
from runyard.store.tables import tool_versions, tools
from runyard.timeutil import rfc3339, utcnow

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VERSIONED_FIELDS = ("entrypoint", "input_schema", "output_schema", "requirements", "required_secrets",
                    "default_inputs", "timeout_s", "memory_mb", "retries", "reuse_process", "retry_on",
                    "retry_backoff_s", "network", "files", "connections", "mcp_server_names",
                    "expected_tools", "mode", "output_vars")
# What a tool's ``retries`` may cover: its own failure (an exception, a crash, a limit),
# the loss of the worker or engine running it, and its timeout.
RETRY_ON_CHOICES = ("error", "worker_lost", "timeout")
DEFAULT_RETRY_ON = ("worker_lost",)
MAX_RETRY_BACKOFF_S = 3600.0  # the base delay, and the cap of any one delay
DEFAULTS: dict[str, Any] = {"timeout_s": 600.0, "memory_mb": 1024, "retries": 0, "reuse_process": False,
                            "retry_on": list(DEFAULT_RETRY_ON), "retry_backoff_s": 0.0, "network": True,
                            "mode": "function"}
MAX_OUTPUT_VARS = 100
# Infers {"input_schema", "description"} by importing the tool in a sandboxed child.
SchemaInferrer = Callable[[Path, str, str, list[str]], dict[str, Any]]
DEPLOY_TOOLS = Permission("member", "deploy tools")
UPDATE_TOOLS = Permission("member", "update tools")
DELETE_TOOLS = Permission("member", "delete tools")
# JSON Schema types of default values, for a script tool's inferred input schema.
_JSON_TYPES: tuple[tuple[type, str], ...] = ((bool, "boolean"), (int, "integer"), (float, "number"),
                                             (str, "string"), (list, "array"), (dict, "object"))
_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?\s*([<>=!~]=?.*)?$|^(/|\./|file:).+")


def tool_view(tool: Any, version: Any) -> dict[str, Any]:
    t, v = tool._mapping, version._mapping
    return {
        "id": t["id"], "object": "tool", "name": t["name"], "description": t["description"],
        "visibility": t["visibility"], "owner_id": t["owner_id"], "version": t["latest_version"],
        **_config(v),
        "created_at": rfc3339(t["created_at"]), "updated_at": rfc3339(t["updated_at"]),
    }


def version_view(version: Any) -> dict[str, Any]:
    v = version._mapping
    return {
        "id": v["id"], "object": "tool_version", "tool_id": v["tool_id"], "version": v["version"],
        "description": v["description"], **_config(v), "source_kind": v["source_kind"],
        "source_name": v["source_name"], "code_sha256": v["code_sha256"],
        "created_at": rfc3339(v["created_at"]),
    }


def _config(v: Any) -> dict[str, Any]:
    script = v["mode"] == "script"
    entry = v["module"] if script else (v["entrypoint"] if v["module"] in ("main",) or v["source_kind"] != "zip"
                                        else f"{v['module']}:{v['entrypoint']}")
    return {
        "entrypoint": entry, "input_schema": v["input_schema"], "output_schema": v["output_schema"],
        "requirements": v["requirements"], "required_secrets": v["required_secrets"],
        "default_inputs": v["default_inputs"], "timeout_s": v["timeout_s"], "memory_mb": v["memory_mb"],
        "retries": v["retries"], "reuse_process": v["reuse_process"], **retry_policy(v),
        "network": bool(v["network"]), "files": list(v["files"] or []),
        "connections": list(v["connections"] or []),
        "mcp_server_names": list(v["mcp_server_names"] or []), "expected_tools": list(v["expected_tools"] or []),
        "mode": v["mode"] or "function", "output_vars": list(v["output_vars"] or []) if script else None,
    }


def retry_policy(v: Any) -> dict[str, Any]:
    """A version's ``retry_on`` (versions made before it existed: the default) and backoff."""
    retry_on = v["retry_on"]
    return {"retry_on": list(DEFAULT_RETRY_ON) if retry_on is None else list(retry_on),
            "retry_backoff_s": float(v["retry_backoff_s"] or 0.0)}


def _check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the versioned config fields present in ``cfg``; returns normalised values.

    Their shapes and ranges are the contract's (``schemas.tools.ToolConfig``); what
    follows are the rules a shape cannot state.
    """
    shaped = parse(ToolConfig, cfg).model_dump(exclude_unset=True)
    out = {**cfg, **{k: v for k, v in shaped.items() if v is not None}}
    schema = out.get("input_schema")
    if schema is not None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValidationFailed(f"input_schema is not valid JSON Schema: {exc.message}",
                                   code="invalid_input_schema",
                                   details={"field": "input_schema", "path": list(exc.path)}) from exc
        if schema.get("type", "object") != "object":
            raise ValidationFailed("input_schema must describe an object (type: object)",
                                   code="invalid_input_schema", details={"field": "input_schema"})
    if out.get("output_schema") is not None:
        try:
            Draft202012Validator.check_schema(out["output_schema"])
        except SchemaError as exc:
            raise ValidationFailed(f"output_schema is not valid JSON Schema: {exc.message}",
                                   code="invalid_output_schema", details={"field": "output_schema"}) from exc
    for key in ("requirements", "required_secrets"):
        if out.get(key) is not None:
            if not all(x.strip() for x in out[key]):
                raise ValidationFailed(f"{key} must be a list of non-empty strings", details={"field": key})
            out[key] = [x.strip() for x in out[key]]
    for req in out.get("requirements") or []:
        if not _REQ_RE.match(req) or any(c in req for c in "\n;|&`$"):
            raise ValidationFailed(f"requirement {req!r} is not a valid pip specifier",
                                   code="invalid_requirement", details={"field": "requirements"})
    from runyard.services.secrets import NAME_RE as SECRET_NAME_RE
    for name in out.get("required_secrets") or []:
        if not SECRET_NAME_RE.match(name):
            raise ValidationFailed(f"required secret {name!r} is not a valid secret name",
                                   details={"field": "required_secrets"})
    if out.get("files") is not None:
        from runyard.services.workspace_files import MAX_FILES_PER_RUN, check_file_name
        out["files"] = list(dict.fromkeys(check_file_name(n, "files") for n in out["files"]))
        if len(out["files"]) > MAX_FILES_PER_RUN:
            raise ValidationFailed(f"a tool declares at most {MAX_FILES_PER_RUN} files", details={"field": "files"})
    for key in ("mcp_server_names", "expected_tools"):
        if out.get(key) is not None:
            if (not isinstance(out[key], list) or len(out[key]) > 100
                    or not all(isinstance(x, str) and x.strip() and len(x) <= 200 for x in out[key])):
                raise ValidationFailed(f"{key}: at most 100 non-empty names", details={"field": key})
            out[key] = list(dict.fromkeys(x.strip() for x in out[key]))
    if out.get("connections") is not None:
        from runyard.services.connections import MAX_DECLARED
        from runyard.services.connections import NAME_RE as CONNECTION_NAME_RE
        out["connections"] = list(dict.fromkeys(out["connections"]))
        bad = [n for n in out["connections"] if not CONNECTION_NAME_RE.match(n)]
        if bad or len(out["connections"]) > MAX_DECLARED:
            raise ValidationFailed(f"connections: at most {MAX_DECLARED} connection names "
                                   f"(lower-case slugs){'; not ' + ', '.join(map(repr, bad)) if bad else ''}",
                                   details={"field": "connections"})
    _check_script_fields(out)
    if out.get("retry_on") is not None:
        out["retry_on"] = [c for c in RETRY_ON_CHOICES if c in out["retry_on"]]  # one order, no repeats
    for key in ("timeout_s", "retry_backoff_s"):
        if out.get(key) is not None:
            out[key] = float(out[key])
    return out


def _check_script_fields(out: dict[str, Any]) -> None:
    """``output_vars`` belong to script mode; a script's globals (its outputs, and its
    defaults, which become globals) are identifiers, not dunder names."""
    if out.get("output_vars") is not None:
        names = out["output_vars"]
        if out.get("mode") != "script":
            raise ValidationFailed("output_vars are for script-mode tools (mode: script)",
                                   code="invalid_output_vars", details={"field": "output_vars"})
        bad = [n for n in names if not _global_name(n)]
        if bad or len(names) > MAX_OUTPUT_VARS:
            raise ValidationFailed(f"output_vars: at most {MAX_OUTPUT_VARS} Python identifiers (not __dunder__)"
                                   f"{'; not ' + ', '.join(map(repr, bad[:10])) if bad else ''}",
                                   code="invalid_output_vars", details={"field": "output_vars"})
        out["output_vars"] = list(dict.fromkeys(names))
    if out.get("mode") == "script":
        bad = [k for k in out.get("default_inputs") or {} if not _global_name(k)]
        if bad:
            raise ValidationFailed(f"a script's inputs become its globals: {', '.join(map(repr, bad[:10]))} "
                                   "is not a Python identifier (or is a __dunder__ name)",
                                   code="invalid_inputs", details={"field": "default_inputs", "names": bad[:10]})


def check_script_inputs(inputs: dict[str, Any]) -> None:
    """A script tool's inputs become its module globals: 400 ``invalid_inputs`` for a name
    that cannot be one (not an identifier, or a __dunder__ name the runtime owns)."""
    bad = [k for k in inputs if not _global_name(k)]
    if bad:
        raise ValidationFailed(f"a script tool's inputs become its globals: {', '.join(map(repr, bad[:10]))} "
                               "is not a Python identifier (or is a __dunder__ name)", code="invalid_inputs",
                               details={"errors": [{"field": k, "message": "not a Python identifier"} for k in bad[:10]]})


def _global_name(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not name.startswith("__")


def schema_from_defaults(defaults: dict[str, Any]) -> dict[str, Any]:
    """A script tool's input schema when none is declared: each default's JSON type, all
    optional; other inputs are allowed (a script reads whatever globals it was given)."""
    properties: dict[str, Any] = {}
    for name, value in defaults.items():
        kind = next((json_type for py_type, json_type in _JSON_TYPES if isinstance(value, py_type)), None)
        properties[name] = {"type": kind} if kind is not None else {}
    return {"type": "object", "properties": properties, "additionalProperties": True}


class ToolService:
    def __init__(self, db: Database, blobs: BlobStore, code_cache: Path, infer: SchemaInferrer) -> None:
        self.db = db
        self.blobs = blobs
        self.code_cache = code_cache
        self.infer = infer
        # The aliases of the named mcp servers' verified tools (services.mcp_client, set by wiring).
        self.mcp_aliases: Callable[[str, list[str]], set[str]] | None = None
        self._versions: dict[tuple[str, int], Any] = {}
        self._recent_tools: dict[tuple[str, str], Any] = {}  # (workspace, ref) -> tool row, see resolve_recent
        self._materialised: dict[str, Path] = {}  # version id -> its dir laid out in code_cache
        self._layout_lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------
    def _tool_row(self, conn: sa.Connection | None, workspace_id: str, ref: str) -> Any:
        """The live tool by id or name: in ``conn``'s transaction, or else as a quick read."""
        by = "id" if ref.startswith("tool_") else "name"
        lookup = self.db.prepared.get(("tool_by", by), lambda: (sa.select(tools).where(
            tools.c[by] == sa.bindparam("ref"), tools.c.workspace_id == sa.bindparam("ws"),
            tools.c.deleted_at.is_(None)), list(tools.c)))
        params = {"ref": ref, "ws": workspace_id}
        row = lookup.execute(conn, params) if conn is not None else lookup.execute_alone(self.db.engine, params)
        if row is None:
            raise NotFound(f"tool {ref!r} not found", code="tool_not_found", details={"tool": ref})
        return row

    def _version_row(self, conn: sa.Connection, tool_id: str, version: int) -> Any:
        # Versions are immutable: once read, a version row is kept for the process' life.
        key = (tool_id, version)
        row = self._versions.get(key)
        if row is not None:
            return row
        row = conn.execute(sa.select(tool_versions).where(
            tool_versions.c.tool_id == tool_id, tool_versions.c.version == version)).first()
        if row is None:
            raise NotFound(f"version {version} not found", code="version_not_found", details={"version": version})
        if len(self._versions) >= 4096:
            self._versions.clear()
        self._versions[key] = row
        return row

    def resolve(self, workspace_id: str, ref: str, version: int | None = None) -> tuple[Any, Any]:
        return self._with_version(self._tool_row(None, workspace_id, ref), version)

    def resolve_recent(self, workspace_id: str, ref: str, version: int | None = None) -> tuple[Any, Any]:
        """``resolve`` from the tool row this process read last for ``ref``, which may be
        stale: for a caller that checks it in its own write (``RunService.create`` inserts
        a run only if the tool is still as read) and calls ``forget`` when it was not."""
        key = (workspace_id, ref)
        tool = self._recent_tools.get(key)
        if tool is None:
            tool = self._tool_row(None, workspace_id, ref)
            if len(self._recent_tools) >= 4096:
                self._recent_tools.clear()
            self._recent_tools[key] = tool
        return self._with_version(tool, version)

    def _with_version(self, tool: Any, version: int | None) -> tuple[Any, Any]:
        """The tool and its version ``version`` (its latest when None)."""
        number = version or tool.latest_version
        cached = self._versions.get((tool.id, number))
        if cached is not None:
            return tool, cached
        with self.db.read() as conn:
            return tool, self._version_row(conn, tool.id, number)

    def forget(self, workspace_id: str, ref: str) -> None:
        self._recent_tools.pop((workspace_id, ref), None)

    def get(self, workspace_id: str, ref: str) -> dict[str, Any]:
        return tool_view(*self.resolve(workspace_id, ref))

    def get_version(self, workspace_id: str, ref: str, version: int) -> dict[str, Any]:
        return version_view(self.resolve(workspace_id, ref, version)[1])

    def version_by_id(self, version_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(tool_versions).where(tool_versions.c.id == version_id)).one()

    def list(self, workspace_id: str, *, search: str | None = None, sort: str = "created_at", order: str = "desc",
             cursor: str | None = None, limit: int = 50, include_total: bool = False,
             only: frozenset[str] = frozenset(), private_of: str | None = None) -> Page:
        """``only``: these tool ids (empty: all); ``private_of``: of the private tools, only
        this user's (and those with no owner); None: every private tool."""
        sort_cols = {"name": tools.c.name, "created_at": tools.c.created_at, "updated_at": tools.c.updated_at}
        if sort not in sort_cols:
            raise ValidationFailed(f"sort must be one of {', '.join(sort_cols)}", details={"field": "sort"})
        if order not in ("asc", "desc"):
            raise ValidationFailed("order must be asc or desc", details={"field": "order"})
        query = sa.select(tools, tool_versions).join(tool_versions, sa.and_(
            tool_versions.c.tool_id == tools.c.id, tool_versions.c.version == tools.c.latest_version,
        )).where(tools.c.workspace_id == workspace_id, tools.c.deleted_at.is_(None))
        if search:
            like = f"%{search.lower()}%"
            query = query.where(sa.or_(sa.func.lower(tools.c.name).like(like),
                                       sa.func.lower(tools.c.description).like(like)))
        if only:
            query = query.where(tools.c.id.in_(sorted(only)))
        if private_of is not None:
            query = query.where(sa.or_(tools.c.visibility == "public", tools.c.owner_id.is_(None),
                                       tools.c.owner_id == private_of))
        parse = None
        if sort != "name":
            from runyard.timeutil import parse_rfc3339
            parse = parse_rfc3339
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=sort_cols[sort], id_col=tools.c.id,
                                        descending=order == "desc", cursor=cursor, limit=limit,
                                        include_total=include_total, cursor_value=parse)
        return Page([tool_view(*split_joined(row, tools, tool_versions)) for row in rows], nxt, total)

    def versions(self, workspace_id: str, ref: str, *, cursor: str | None, limit: int) -> Page:
        with self.db.read() as conn:
            tool = self._tool_row(conn, workspace_id, ref)
            query = sa.select(tool_versions).where(tool_versions.c.tool_id == tool.id)
            rows, nxt, _ = paginate(conn, query, sort_col=tool_versions.c.version, id_col=tool_versions.c.id,
                                    descending=True, cursor=cursor, limit=limit)
        return Page([version_view(r) for r in rows], nxt, None)

    # -- writing ---------------------------------------------------------------------------
    def deploy(self, workspace_id: str, *, name: str, code: str | None = None,
               upload: tuple[str, bytes] | None = None, entrypoint: str = "main", description: str = "",
               visibility: str | None = None, owner_id: str | None = None,
               **config: Any) -> tuple[dict[str, Any], bool]:
        """Create the tool (owned by user ``owner_id``; ``visibility`` default private), or
        publish a new version when the name exists (its visibility changes only when
        given). Returns (tool, created)."""
        _check_name(name)
        unknown = set(config) - set(VERSIONED_FIELDS)
        if unknown:
            raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}",
                                   details={"fields": sorted(unknown)})
        if visibility is not None:
            _check_visibility(visibility)
        source = self._source(code, upload, entrypoint, config.get("mode") or "function")
        cfg = _check_config({**DEFAULTS, **{k: v for k, v in config.items() if v is not None}})
        with self.db.read() as conn:
            existing = conn.execute(sa.select(tools).where(
                tools.c.workspace_id == workspace_id, tools.c.name == name, tools.c.deleted_at.is_(None))).first()
        if existing is not None:
            tool = self.update(workspace_id, existing.id, source=source, description=description or None,
                               visibility=visibility, entrypoint=entrypoint, **config)
            return tool, False
        version_row = self._new_version_values(workspace_id, "", 1, source, cfg, description)
        now = utcnow()
        tool_id = new_id("tool")
        version_row["tool_id"] = tool_id
        with self.db.write() as conn:
            dup = conn.execute(sa.select(tools.c.id).where(
                tools.c.workspace_id == workspace_id, tools.c.name == name, tools.c.deleted_at.is_(None))).first()
            if dup is not None:  # lost a race with a concurrent deploy of the same name
                raise Conflict(f"tool {name!r} was deployed concurrently; retry", code="conflict",
                               details={"retryable": True})
            conn.execute(tools.insert().values(
                id=tool_id, workspace_id=workspace_id, name=name, description=version_row["description"],
                visibility=visibility or "private", owner_id=owner_id, latest_version=1, created_at=now,
                updated_at=now))
            conn.execute(tool_versions.insert().values(**version_row))
        return self.get(workspace_id, tool_id), True

    def update(self, workspace_id: str, ref: str, *, source: ToolSource | None = None, code: str | None = None,
               upload: tuple[str, bytes] | None = None, description: str | None = None,
               visibility: str | None = None, name: str | None = None, **config: Any) -> dict[str, Any]:
        """A new version when the code or a versioned field changed; ``description``,
        ``visibility`` and ``name`` (a rename: the id stays) change the tool itself."""
        if name is not None:
            _check_name(name)
        unknown = set(config) - set(VERSIONED_FIELDS)
        if unknown:
            raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}",
                                   details={"fields": sorted(unknown)})
        if visibility is not None:
            _check_visibility(visibility)
        tool, latest = self.resolve(workspace_id, ref)
        current = _config(latest._mapping)
        if latest.source_kind != "zip" and current["mode"] != "script":
            current["entrypoint"] = latest.entrypoint  # a script's stays its module, as _config reads it
        changed = {k: v for k, v in config.items() if v is not None}
        mode = changed.get("mode", current["mode"])
        mode_changed = mode != current["mode"]
        if mode_changed and "output_vars" not in changed:
            current["output_vars"] = None  # a script's outputs do not outlive its script mode
        # Switching mode re-reads the entrypoint: a function's name, or a script's module.
        entrypoint = changed.get("entrypoint", "main" if mode_changed else current["entrypoint"])
        if source is None and (code is not None or upload is not None):
            source = self._source(code, upload, entrypoint, mode)
        elif source is None and ("entrypoint" in changed or mode_changed):
            data = self.blobs.get_bytes(latest.code_blob)
            source = _source_of(latest.source_kind, latest.source_name, data, entrypoint, mode)
        cfg = _check_config({**current, **changed})
        code_changed = source is not None and (
            hashlib.sha256(source.data).hexdigest() != latest.code_sha256
            or (source.module, source.entrypoint) != (latest.module, latest.entrypoint))
        schema_inferred = latest.input_schema_inferred and "input_schema" not in changed
        if schema_inferred and (code_changed or mode_changed or (
                mode == "script" and cfg.get("default_inputs") != current.get("default_inputs"))):
            cfg["input_schema"] = None  # the signature (a script's defaults) may have changed: infer again
        cfg_changed = any(cfg.get(k) != current.get(k) for k in VERSIONED_FIELDS
                          if k != "entrypoint" and not (k == "input_schema" and cfg[k] is None))
        tool_updates: dict[str, Any] = {}
        if description is not None:
            tool_updates["description"] = description
        if visibility is not None:
            tool_updates["visibility"] = visibility
        if name is not None and name != tool.name:
            tool_updates["name"] = name
        new_version = None
        if code_changed or cfg_changed:
            if source is None:
                data = self.blobs.get_bytes(latest.code_blob)
                source = ToolSource(latest.source_kind, latest.source_name, data, latest.module, latest.entrypoint)
            new_version = self._new_version_values(
                workspace_id, tool.id, 0, source, cfg,
                description if description is not None else tool.description,
                inferred_flag=schema_inferred)
        try:
            with self.db.write() as conn:
                if "name" in tool_updates and conn.execute(sa.select(tools.c.id).where(
                        tools.c.workspace_id == workspace_id, tools.c.name == name, tools.c.id != tool.id,
                        tools.c.deleted_at.is_(None))).first() is not None:
                    raise _name_taken(name or "")
                self._write_update(conn, tool.id, new_version, tool_updates)
        except sa.exc.IntegrityError as exc:  # a concurrent deploy or rename took the name first
            if "name" in tool_updates:
                raise _name_taken(name or "") from exc
            raise
        return self.get(workspace_id, tool.id)

    def _write_update(self, conn: sa.Connection, tool_id: str, new_version: dict[str, Any] | None,
                      tool_updates: dict[str, Any]) -> None:
        """Insert ``new_version`` (numbered after the latest) and update the tool's row."""
        if new_version is not None:
            latest_n = conn.execute(sa.select(tools.c.latest_version).where(tools.c.id == tool_id)).scalar_one()
            new_version["version"] = latest_n + 1
            conn.execute(tool_versions.insert().values(**new_version))
            tool_updates["latest_version"] = latest_n + 1
        if tool_updates:
            tool_updates["updated_at"] = utcnow()
            conn.execute(tools.update().where(tools.c.id == tool_id).values(**tool_updates))

    def delete(self, workspace_id: str, ref: str) -> None:
        with self.db.write() as conn:
            tool = self._tool_row(conn, workspace_id, ref)
            conn.execute(tools.update().where(tools.c.id == tool.id).values(deleted_at=utcnow()))

    # -- on behalf of a principal -----------------------------------------------------------
    # What the API (and any other front end) calls: each authorizes the principal first.
    # A tool outside a restricted token's tools, or another user's private tool, is
    # hidden: 404, as if it did not exist (docs/api.md, "Tool visibility").
    def visible(self, principal: Principal, ref: str, version: int | None = None) -> tuple[Any, Any]:
        tool, ver = self.resolve(principal.workspace_id, ref, version)
        if not sees(principal, tool):
            raise NotFound(f"tool {ref!r} not found", code="tool_not_found", details={"tool": ref})
        return tool, ver

    def changeable(self, principal: Principal, ref: str) -> tuple[Any, Any]:
        """The tool, if ``principal`` sees it (else 404) and may change it (else 403
        ``not_tool_owner``: another user's public tool)."""
        tool, ver = self.visible(principal, ref)
        if not principal.can_change_tool(tool.owner_id):
            raise PermissionDenied(f"tool {tool.name!r} is another user's: only its owner or an admin can change it",
                                   code="not_tool_owner", details={"tool": tool.name})
        return tool, ver

    def get_for(self, principal: Principal, ref: str) -> dict[str, Any]:
        return tool_view(*self.visible(principal, ref))

    def get_version_for(self, principal: Principal, ref: str, version: int) -> dict[str, Any]:
        tool, _ = self.visible(principal, ref)  # the tool first: a hidden tool's versions are hidden too
        return version_view(self._with_version(tool, version)[1])

    def versions_for(self, principal: Principal, ref: str, *, cursor: str | None, limit: int) -> Page:
        tool, _ = self.visible(principal, ref)
        return self.versions(principal.workspace_id, tool.id, cursor=cursor, limit=limit)

    def list_for(self, principal: Principal, **filters: Any) -> Page:
        return self.list(principal.workspace_id, only=principal.tools,
                         private_of=None if principal.role == "admin" else principal.user_id or "", **filters)

    def deploy_for(self, principal: Principal, *, name: str, **fields: Any) -> tuple[dict[str, Any], bool]:
        """Deploy as ``principal``. A restricted token may deploy only names in its
        restriction (403 ``restricted`` otherwise, whether or not the tool exists, so the
        answer reveals nothing) and declare only secrets its tools already declare."""
        DEPLOY_TOOLS.check(principal)
        if isinstance(name, str) and name and principal.tools:
            with self.db.read() as conn:
                existing = conn.execute(sa.select(tools.c.id).where(
                    tools.c.workspace_id == principal.workspace_id, tools.c.name == name,
                    tools.c.deleted_at.is_(None))).scalar()
            principal.require_tool(existing or "", name)
        if isinstance(name, str) and name:
            self._check_may_publish(principal, name)
        self._check_declarations(principal, fields)
        self._check_expected_tools(principal.workspace_id, fields.get("mcp_server_names"),
                                   fields.get("expected_tools"))
        return self.deploy(principal.workspace_id, name=name, owner_id=principal.user_id, **fields)

    def _check_may_publish(self, principal: Principal, name: str) -> None:
        """A deploy under an existing name is a new version of that tool: 409 ``tool_exists``
        when the caller cannot see it (another user's private tool), 403 ``not_tool_owner``
        when it sees but may not change it."""
        with self.db.read() as conn:
            existing = conn.execute(sa.select(tools).where(
                tools.c.workspace_id == principal.workspace_id, tools.c.name == name,
                tools.c.deleted_at.is_(None))).first()
        if existing is None:
            return
        if not sees(principal, existing):
            raise Conflict(f"a tool named {name!r} already exists and is not visible to this key; "
                           "choose another name", code="tool_exists", details={"name": name})
        if not principal.can_change_tool(existing.owner_id):
            raise PermissionDenied(f"tool {name!r} is another user's: only its owner or an admin can "
                                   "publish a new version", code="not_tool_owner", details={"tool": name})

    def update_for(self, principal: Principal, ref: str, **fields: Any) -> dict[str, Any]:
        UPDATE_TOOLS.check(principal)
        tool, version = self.changeable(principal, ref)
        self._check_declarations(principal, fields)
        if fields.get("mcp_server_names") is not None or fields.get("expected_tools") is not None:
            self._check_expected_tools(
                principal.workspace_id,
                fields["mcp_server_names"] if fields.get("mcp_server_names") is not None
                else version.mcp_server_names,
                fields["expected_tools"] if fields.get("expected_tools") is not None
                else version.expected_tools)
        return self.update(principal.workspace_id, tool.id, **fields)

    def _check_expected_tools(self, workspace_id: str, servers: Any, expected: Any) -> None:
        """400 ``mcp_tools_missing`` unless every expected alias is among the tools the
        declared MCP servers listed at their last verify (services.mcp_client)."""
        if not expected:
            return
        known = self.mcp_aliases(workspace_id, list(servers or [])) if self.mcp_aliases and servers else set()
        missing = [alias for alias in expected if alias not in known]
        if missing:
            raise ValidationFailed(
                f"expected MCP tools not listed by the declared servers {list(servers or [])}: {', '.join(missing)}",
                code="mcp_tools_missing", details={"field": "expected_tools", "missing": missing})

    def delete_for(self, principal: Principal, ref: str) -> None:
        DELETE_TOOLS.check(principal)
        tool, _ = self.changeable(principal, ref)
        self.delete(principal.workspace_id, tool.id)

    def _check_declarable(self, principal: Principal, names: Any) -> None:
        """A restricted token reaches the secrets its tools declare (see services.secrets):
        were it free to declare any name in its own tool, it could reach every secret by
        redeploying that tool. So it may declare only secrets within its reach already;
        adding a new one takes an unrestricted token."""
        if not principal.tools or not isinstance(names, list):
            return  # unrestricted, or nothing declared (malformed values are the deploy's to refuse)
        with self.db.read() as conn:
            reach = declared_secrets(conn, principal.workspace_id, principal.tools)
        extra = sorted({n.strip() for n in names if isinstance(n, str)} - reach - {""})
        if extra:
            raise PermissionDenied(
                f"this token is restricted and can declare only secrets its tools already declare; "
                f"not: {', '.join(extra)} (an unrestricted token can add them)",
                code="restricted", details={"field": "required_secrets", "secrets": extra})

    def _check_declarations(self, principal: Principal, fields: dict[str, Any]) -> None:
        self._check_declarable(principal, fields.get("required_secrets"))
        self._check_within_reach(principal, fields.get("files"), column="files", field="files",
                                 noun="workspace files")
        self._check_within_reach(principal, fields.get("connections"), column="connections",
                                 field="connections", noun="connections")

    def _check_within_reach(self, principal: Principal, names: Any, *, column: str, field: str, noun: str) -> None:
        """A restricted token reaches no workspace files or connections of its own, so it may
        declare only those its tools declare already (a run of its tool is handed what it
        declares, secrets included)."""
        if not principal.restricted or not isinstance(names, list):
            return
        with self.db.read() as conn:
            reach = declared(conn, principal.workspace_id, principal.tools, column)
        extra = sorted({n for n in names if isinstance(n, str)} - reach)
        if extra:
            raise PermissionDenied(
                f"this token is restricted and can declare only {noun} its tools already declare; "
                f"not: {', '.join(extra)} (an unrestricted token can add them)",
                code="restricted", details={"field": field, field: extra})

    # -- helpers ---------------------------------------------------------------------------
    def _source(self, code: str | None, upload: tuple[str, bytes] | None, entrypoint: str,
                mode: str = "function") -> ToolSource:
        if (code is None) == (upload is None):
            raise ValidationFailed("give either code (a string) or a file upload", code="missing_source",
                                   details={"field": "code"})
        if code is not None:
            return script_from_code(code, entrypoint) if mode == "script" else from_code(code, entrypoint)
        assert upload is not None
        return _source_of("upload", upload[0], upload[1], entrypoint, mode)

    def _new_version_values(self, workspace_id: str, tool_id: str, version: int, source: ToolSource,
                            cfg: dict[str, Any], description: str, inferred_flag: bool = False) -> dict[str, Any]:
        version_id = new_id("tv")
        blob_key = f"tools/{version_id}/{source.filename}"
        sha = self.blobs.put_bytes(blob_key, source.data)
        inferred = inferred_flag
        schema = cfg.get("input_schema")
        if schema is None and cfg.get("mode") == "script":
            schema, inferred = schema_from_defaults(cfg.get("default_inputs") or {}), True
        elif schema is None:
            described = self._infer(version_id, source, cfg.get("requirements") or [])
            schema = described["input_schema"]
            inferred = True
            # No description given: the entry function's docstring summary, as the CLI shows it.
            description = description or (described.get("description") or "").strip().split("\n\n")[0]
        return {
            "id": version_id, "workspace_id": workspace_id, "tool_id": tool_id, "version": version,
            "description": description or "", "source_kind": source.kind, "source_name": source.filename,
            "code_blob": blob_key, "code_sha256": sha, "module": source.module, "entrypoint": source.entrypoint,
            "input_schema": schema, "input_schema_inferred": inferred, "output_schema": cfg.get("output_schema"),
            "requirements": cfg.get("requirements") or [], "required_secrets": cfg.get("required_secrets") or [],
            "default_inputs": cfg.get("default_inputs") or {}, "timeout_s": cfg["timeout_s"],
            "memory_mb": cfg["memory_mb"], "retries": cfg["retries"], "reuse_process": cfg["reuse_process"],
            "retry_on": cfg["retry_on"], "retry_backoff_s": cfg["retry_backoff_s"], "network": cfg["network"],
            "files": cfg.get("files") or None, "connections": cfg.get("connections") or None,
            "mcp_server_names": cfg.get("mcp_server_names") or None,
            "expected_tools": cfg.get("expected_tools") or None,
            "mode": cfg.get("mode") or "function",
            "output_vars": cfg.get("output_vars") if cfg.get("mode") == "script" else None,
            "created_at": utcnow(),
        }

    def _infer(self, version_id: str, source: ToolSource, requirements: list[str]) -> dict[str, Any]:
        """What inspecting the entry function tells: ``input_schema`` and ``description``."""
        with tempfile.TemporaryDirectory(prefix="runyard-infer-") as tmp:
            src = Path(tmp) / "src"
            materialise(source.kind, source.filename, source.data, src)
            return self.infer(src, source.module, source.entrypoint, requirements)

    def source_dir(self, version: Any) -> Path:
        """The version's source laid out for import, cached per version on this node."""
        laid_out = self._materialised.get(version.id)
        if laid_out is not None:
            return laid_out
        target = self.code_cache / version.id
        # The first runs of a new version often start together: one thread lays it out.
        with self._layout_lock:
            if version.id not in self._materialised:
                if not target.exists():
                    self.code_cache.mkdir(parents=True, exist_ok=True)
                    materialise(version.source_kind, version.source_name,
                                self.blobs.get_bytes(version.code_blob), target)
                self._materialised[version.id] = target
        return target


def declared(conn: sa.Connection, workspace_id: str, tool_ids: Collection[str], column: str) -> set[str]:
    """What the latest versions of the live tools ``tool_ids`` declare in ``column`` of
    ``tool_versions`` (``required_secrets``, ``files``, ``connections``)."""
    if not tool_ids:
        return set()
    rows = conn.execute(sa.select(tool_versions.c[column]).select_from(tools.join(
        tool_versions, sa.and_(tool_versions.c.tool_id == tools.c.id,
                               tool_versions.c.version == tools.c.latest_version))).where(
        tools.c.workspace_id == workspace_id, tools.c.id.in_(sorted(tool_ids)),
        tools.c.deleted_at.is_(None))).all()
    return {name for row in rows for name in row[0] or ()}


def declared_secrets(conn: sa.Connection, workspace_id: str, tool_ids: Collection[str]) -> set[str]:
    """The secrets the latest versions of the live tools ``tool_ids`` declare."""
    return declared(conn, workspace_id, tool_ids, "required_secrets")


def _check_visibility(visibility: str) -> None:
    if visibility not in ("private", "public"):
        raise ValidationFailed("visibility must be private or public", details={"field": "visibility"})


def sees(principal: Principal, tool: Any) -> bool:
    """Whether ``principal`` sees the tool row ``tool`` (services.access)."""
    return principal.can_see_tool(tool.id, public=tool.visibility == "public", owner_id=tool.owner_id)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationFailed("name must be a slug: lowercase letters, digits, '-' or '_', max 64",
                               code="invalid_tool_name", details={"field": "name"})
    if looks_like_id(name):
        raise ValidationFailed(f"a tool name cannot start like an id ({name.partition('_')[0]}_…): "
                               "it would be looked up as one", code="invalid_tool_name",
                               details={"field": "name"})


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a tool named {name!r} already exists", code="tool_exists", details={"name": name})


def _source_of(kind: str, filename: str, data: bytes, entrypoint: str, mode: str) -> ToolSource:
    """A source from a code string (``kind`` code) or an upload, read for ``mode``: a
    function's ``entrypoint`` names its function, a script's its module."""
    if mode == "script":
        return script_from_code(data.decode(), entrypoint) if kind == "code" else \
            script_from_upload(filename, data, entrypoint)
    return from_code(data.decode(), entrypoint) if kind == "code" else from_upload(filename, data, entrypoint)

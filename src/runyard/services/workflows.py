"""Workflows: versioned definitions (YAML/JSON), their drafts, tags and folders.

A definition is validated on save against the tools and workflows of the workspace (unknown
tools, cycles, bad expressions, inputs that cannot fit a tool's schema, nesting depth) with
errors that point at the line (``runyard.workflows``). Published versions never change: a
run points at the one it used. A workflow has at most one draft, numbered when published.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa

from runyard.ids import looks_like_id, new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.tools import ToolService
from runyard.store.db import Database
from runyard.store.rows import RowView
from runyard.store.tables_workflows import folders, workflow_versions, workflows
from runyard.timeutil import parse_rfc3339, rfc3339, utcnow
from runyard.workflows import Definition, Uses, WorkflowError, parse_definition
from runyard.workflows.nesting import DEFAULT_MAX_DEPTH

# Workflows call tools on the caller's behalf: a key restricted to some tools or data
# cannot manage or run them (its restriction could not follow every step).
READ_WORKFLOWS = Permission("viewer", "read workflows", unrestricted=True)
WRITE_WORKFLOWS = Permission("member", "manage workflows", unrestricted=True)
WRITE_FOLDERS = Permission("member", "manage folders", unrestricted=True)
KINDS = ("workflow", "block")
LIST_SORTS = ("name", "created_at", "updated_at")
MAX_SOURCE_BYTES = 1_000_000
TAG_MAX = 64


def _invalid(exc: WorkflowError) -> ValidationFailed:
    issues = [issue.to_dict() for issue in exc.issues]
    first = exc.issues[0]
    where = f" (line {first.line})" if first.line else ""
    more = f" and {len(issues) - 1} more problem(s)" if len(issues) > 1 else ""
    return ValidationFailed(f"invalid workflow: {first.message}{where}{more}", code=first.code or "invalid_workflow",
                            details={"issues": issues})


def workflow_view(row: Any, version: Any | None, draft: Any | None = None, *, with_source: bool = False
                  ) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "object": "workflow", "name": row.name, "kind": row.kind, "description": row.description,
        "folder_id": row.folder_id, "latest_version": row.latest_version,
        "tag": version.tag if version is not None else None,
        "has_draft": draft is not None,
        "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at),
    }
    if with_source:
        shown = version if version is not None else draft
        view["source"] = shown.source if shown is not None else None
        view["definition"] = shown.definition if shown is not None else None
        view["draft"] = version_view(draft, with_source=True) if draft is not None and version is not None else None
    return view


def version_view(row: Any, *, with_source: bool = False) -> dict[str, Any]:
    view = {"id": row.id, "object": "workflow_version", "workflow_id": row.workflow_id, "version": row.version,
            "status": row.status, "tag": row.tag, "created_at": rfc3339(row.created_at),
            "published_at": rfc3339(row.published_at)}
    if with_source:
        view["source"] = row.source
        view["definition"] = row.definition
    return view


def folder_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "object": "folder", "name": row.name, "description": row.description,
            "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}


def source_text(definition: Any) -> tuple[str, Any]:
    """The text to keep and the value to parse from a body's ``definition`` (YAML/JSON text or an object)."""
    if isinstance(definition, bytes):
        try:
            definition = definition.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("the definition is not UTF-8 text", code="invalid_yaml",
                                   details={"field": "definition"}) from exc
    if isinstance(definition, str):
        _check_size(definition)
        return definition, definition
    if isinstance(definition, dict):
        text = json.dumps(definition, indent=2, ensure_ascii=False)
        _check_size(text)
        return text, definition
    raise ValidationFailed("definition must be YAML/JSON text or an object", code="invalid_workflow",
                           details={"field": "definition"})


def _check_size(text: str) -> None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: not text any store can keep
        raise ValidationFailed("the definition is not valid UTF-8 text", code="invalid_yaml",
                               details={"field": "definition"}) from exc
    if size > MAX_SOURCE_BYTES:
        raise ValidationFailed(f"a definition is at most {MAX_SOURCE_BYTES} bytes", code="payload_too_large",
                               details={"field": "definition"})


class WorkflowService:
    def __init__(self, db: Database, tools: ToolService, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.db = db
        self.tools = tools
        self.max_depth = max_depth
        self._definitions: OrderedDict[str, Definition] = OrderedDict()
        self._lock = threading.Lock()

    # -- lookups ---------------------------------------------------------------------------
    def _row(self, conn: sa.Connection, principal: Principal, ref: str) -> Any:
        if not isinstance(ref, str) or not ref:
            raise ValidationFailed("a workflow id or name is required", details={"field": "workflow"})
        col = workflows.c.id if ref.startswith("wf_") else workflows.c.name
        row = conn.execute(sa.select(workflows).where(
            workflows.c.workspace_id == principal.workspace_id, col == ref, workflows.c.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound(f"workflow {ref!r} not found", code="workflow_not_found", details={"workflow": ref})
        return row

    @staticmethod
    def _version_row(conn: sa.Connection, workflow_id: str, ref: int | str | None) -> Any:
        query = sa.select(workflow_versions).where(workflow_versions.c.workflow_id == workflow_id)
        if ref is None:
            query = query.where(workflow_versions.c.status == "published").order_by(
                workflow_versions.c.version.desc()).limit(1)
        elif isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            query = query.where(workflow_versions.c.version == int(ref), workflow_versions.c.status == "published")
        else:
            query = query.where(workflow_versions.c.tag == ref, workflow_versions.c.status == "published")
        return conn.execute(query).first()

    @staticmethod
    def _draft_row(conn: sa.Connection, workflow_id: str) -> Any:
        return conn.execute(sa.select(workflow_versions).where(
            workflow_versions.c.workflow_id == workflow_id, workflow_versions.c.status == "draft")).first()

    def resolve(self, principal: Principal, ref: str, version: int | str | None = None) -> tuple[Any, Any]:
        """The workflow and one of its published versions (the latest unless ``version``:
        a number or a tag); 404 ``workflow_not_found`` / ``workflow_version_not_found``."""
        READ_WORKFLOWS.check(principal)
        if version is not None and not (isinstance(version, int) and not isinstance(version, bool) and version >= 1
                                        or isinstance(version, str) and 0 < len(version) <= TAG_MAX):
            raise ValidationFailed("version must be a positive integer or a tag", details={"field": "version"})
        with self.db.read() as conn:
            row = self._row(conn, principal, ref)
            ver = self._version_row(conn, row.id, version)
        if ver is None:
            what = f"version {version!r}" if version is not None else "a published version"
            raise NotFound(f"workflow {row.name!r} has no {what}", code="workflow_version_not_found",
                           details={"workflow": row.name, "version": version})
        return row, ver

    def definition(self, version: Any) -> Definition:
        """The parsed definition of a stored version (cached: published versions never change)."""
        with self._lock:
            found = self._definitions.get(version.id)
            if found is not None and version.status == "published":
                self._definitions.move_to_end(version.id)
                return found
        parsed = parse_definition(version.definition)
        if version.status == "published":
            with self._lock:
                self._definitions[version.id] = parsed
                while len(self._definitions) > 512:
                    self._definitions.popitem(last=False)
        return parsed

    def definition_by_version_id(self, version_id: str) -> Definition:
        """A run's definition by its version's id (no read when cached: versions a run can use never change)."""
        with self._lock:
            found = self._definitions.get(version_id)
        return found if found is not None else self.definition(self.version_by_id(version_id))

    def version_by_id(self, version_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(workflow_versions).where(workflow_versions.c.id == version_id)).one()

    # -- validation ------------------------------------------------------------------------
    def _parse(self, principal: Principal, source: Any) -> Definition:
        def tool_schema(uses: Uses) -> dict[str, Any] | None:
            if uses.tag is not None:
                return None  # tools are versioned by number only
            try:
                _, version = self.tools.visible(principal, uses.name, uses.version)
            except NotFound:
                return None
            return dict(version.input_schema or {})

        def resolve(name: str, ref: int | str | None) -> Definition | None:
            try:
                _, version = self.resolve(principal, name, ref)
            except (NotFound, ValidationFailed):
                return None
            return self.definition(version)

        try:
            return parse_definition(source, tool_schema=tool_schema, resolve=resolve, max_depth=self.max_depth)
        except WorkflowError as exc:
            raise _invalid(exc) from exc

    # -- reading ---------------------------------------------------------------------------
    def get(self, principal: Principal, ref: str) -> dict[str, Any]:
        READ_WORKFLOWS.check(principal)
        with self.db.read() as conn:
            row = self._row(conn, principal, ref)
            version = self._version_row(conn, row.id, None)
            draft = self._draft_row(conn, row.id)
        return workflow_view(row, version, draft, with_source=True)

    def list(self, principal: Principal, *, search: str | None = None, name: str | None = None,
             kind: str | None = None, folder_id: str | None = None, sort: str = "created_at", order: str = "desc",
             cursor: str | None = None, limit: int = 50, include_total: bool = False) -> Page:
        READ_WORKFLOWS.check(principal)
        if sort not in LIST_SORTS:
            raise ValidationFailed(f"sort must be one of {', '.join(LIST_SORTS)}", details={"field": "sort"})
        if order not in ("asc", "desc"):
            raise ValidationFailed("order must be asc or desc", details={"field": "order"})
        if kind is not None and kind not in KINDS:
            raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", details={"field": "kind"})
        query = sa.select(workflows).where(workflows.c.workspace_id == principal.workspace_id,
                                           workflows.c.deleted_at.is_(None))
        if search:
            like = f"%{search.lower()}%"
            query = query.where(sa.or_(sa.func.lower(workflows.c.name).like(like),
                                       sa.func.lower(workflows.c.description).like(like)))
        for col, value in ((workflows.c.name, name), (workflows.c.kind, kind), (workflows.c.folder_id, folder_id)):
            if value is not None:
                query = query.where(col == value)
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=workflows.c[sort], id_col=workflows.c.id,
                                        descending=order == "desc", cursor=cursor, limit=limit,
                                        include_total=include_total,
                                        cursor_value=None if sort == "name" else parse_rfc3339)
            tags = {}
            published = [(r.id, r.latest_version) for r in rows if r.latest_version is not None]
            if published:
                found = conn.execute(sa.select(workflow_versions.c.workflow_id, workflow_versions.c.tag).where(
                    sa.tuple_(workflow_versions.c.workflow_id, workflow_versions.c.version).in_(published))).all()
                tags = {f.workflow_id: f.tag for f in found}
        items = []
        for row in rows:
            view = workflow_view(row, None)
            view["tag"] = tags.get(row.id)
            view.pop("has_draft")
            items.append(view)
        return Page(items, nxt, total)

    def versions(self, principal: Principal, ref: str, *, cursor: str | None = None, limit: int = 50) -> Page:
        READ_WORKFLOWS.check(principal)
        with self.db.read() as conn:
            row = self._row(conn, principal, ref)
            query = sa.select(workflow_versions).where(workflow_versions.c.workflow_id == row.id)
            rows, nxt, _ = paginate(conn, query, sort_col=workflow_versions.c.created_at,
                                    id_col=workflow_versions.c.id, descending=True, cursor=cursor, limit=limit,
                                    cursor_value=parse_rfc3339)
        return Page([version_view(r) for r in rows], nxt, None)

    def version(self, principal: Principal, ref: str, version: int | str) -> dict[str, Any]:
        _, row = self.resolve(principal, ref, version)
        return version_view(row, with_source=True)

    # -- writing ---------------------------------------------------------------------------
    def _check_folder(self, conn: sa.Connection, principal: Principal, folder_id: Any) -> str | None:
        if folder_id is None:
            return None
        if not isinstance(folder_id, str) or conn.execute(sa.select(folders.c.id).where(
                folders.c.id == folder_id, folders.c.workspace_id == principal.workspace_id)).first() is None:
            raise ValidationFailed(f"folder {folder_id!r} not found", code="folder_not_found",
                                   details={"field": "folder_id"})
        return folder_id

    def save(self, principal: Principal, definition: Any, *, draft: bool = False, folder_id: Any = None,
             tag: Any = None) -> tuple[dict[str, Any], bool]:
        """Create the workflow, or add a version to the one of that name: published (the next
        number) unless ``draft``. Returns (workflow, created)."""
        WRITE_WORKFLOWS.check(principal)
        text, value = source_text(definition)
        parsed = self._parse(principal, value)
        if looks_like_id(parsed.name):
            raise ValidationFailed("a workflow name cannot start like an id", code="invalid_workflow",
                                   details={"field": "name"})
        tag = self._check_tag(tag)
        if draft and tag is not None:
            raise ValidationFailed("a draft has no tag; give the tag when publishing it", details={"field": "tag"})
        now = utcnow()
        with self.db.write() as conn:
            folder_id = self._check_folder(conn, principal, folder_id)
            row = conn.execute(sa.select(workflows).where(
                workflows.c.workspace_id == principal.workspace_id, workflows.c.name == parsed.name,
                workflows.c.deleted_at.is_(None))).first()
            created = row is None
            if created:
                workflow_id = new_id("wf")
                conn.execute(workflows.insert().values(
                    id=workflow_id, workspace_id=principal.workspace_id, name=parsed.name, kind=parsed.kind,
                    description=parsed.description, folder_id=folder_id, user_id=principal.user_id,
                    latest_version=None, created_at=now, updated_at=now))
            else:
                workflow_id = row.id
                if row.kind != parsed.kind:
                    raise Conflict(f"{parsed.name!r} is a {row.kind}; a version cannot make it a {parsed.kind}",
                                   code="workflow_kind_changed", details={"kind": row.kind})
            self._store_version(conn, principal, workflow_id, text, parsed, draft=draft, tag=tag, now=now)
            values: dict[str, Any] = {"updated_at": now}
            if not draft:
                values["description"] = parsed.description
            if folder_id is not None:
                values["folder_id"] = folder_id
            conn.execute(workflows.update().where(workflows.c.id == workflow_id).values(**values))
        return self.get(principal, workflow_id), created

    def update(self, principal: Principal, ref: str, *, definition: Any = None, draft: bool = False,
               folder_id: Any = ..., description: Any = None, tag: Any = None) -> dict[str, Any]:
        """PATCH: a new version (or the draft) from ``definition``; ``folder_id`` (None: out of
        any folder) without a new version."""
        WRITE_WORKFLOWS.check(principal)
        with self.db.read() as conn:
            row = self._row(conn, principal, ref)
        if definition is not None:
            _, value = source_text(definition)
            name = value.get("name") if isinstance(value, dict) else None
            if isinstance(value, str):
                name = self._parse(principal, value).name
            if name is not None and name != row.name:
                raise ValidationFailed(f"the definition is named {name!r}, not {row.name!r}; a workflow's name "
                                       "does not change", code="name_mismatch", details={"field": "name"})
            self.save(principal, definition, draft=draft, tag=tag)
        elif description is not None:
            raise ValidationFailed("description is part of the definition; send a new definition",
                                   details={"field": "description"})
        if folder_id is not ...:
            with self.db.write() as conn:
                folder = self._check_folder(conn, principal, folder_id)
                conn.execute(workflows.update().where(workflows.c.id == row.id)
                             .values(folder_id=folder, updated_at=utcnow()))
        return self.get(principal, row.id)

    def publish(self, principal: Principal, ref: str, *, tag: Any = None, version: Any = None) -> dict[str, Any]:
        """Publish the draft (optionally tagged), or with ``version``, move ``tag`` onto that
        published version."""
        WRITE_WORKFLOWS.check(principal)
        tag = self._check_tag(tag)
        now = utcnow()
        with self.db.write() as conn:
            row = self._row(conn, principal, ref)
            if version is not None:
                if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                    raise ValidationFailed("version must be a positive integer", details={"field": "version"})
                target = self._version_row(conn, row.id, version)
                if target is None:
                    raise NotFound(f"workflow {row.name!r} has no version {version}",
                                   code="workflow_version_not_found", details={"version": version})
                if tag is None:
                    raise ValidationFailed("give a tag to set on the version", details={"field": "tag"})
                self._move_tag(conn, row.id, target.id, tag)
                result = target.id
            else:
                draft = self._draft_row(conn, row.id)
                if draft is None:
                    raise Conflict(f"workflow {row.name!r} has no draft to publish", code="no_draft")
                number = self._next_number(conn, row.id)
                if tag is not None:
                    self._move_tag(conn, row.id, draft.id, tag)
                conn.execute(workflow_versions.update().where(workflow_versions.c.id == draft.id).values(
                    status="published", version=number, published_at=now))
                parsed = parse_definition(draft.definition)
                conn.execute(workflows.update().where(workflows.c.id == row.id).values(
                    latest_version=number, description=parsed.description, updated_at=now))
                result = draft.id
            published = conn.execute(sa.select(workflow_versions).where(workflow_versions.c.id == result)).one()
        return version_view(published)

    def delete(self, principal: Principal, ref: str) -> None:
        """Delete the workflow (its versions stay, for the runs that used them)."""
        WRITE_WORKFLOWS.check(principal)
        with self.db.write() as conn:
            row = self._row(conn, principal, ref)
            conn.execute(workflows.update().where(workflows.c.id == row.id).values(deleted_at=utcnow()))

    @staticmethod
    def _check_tag(tag: Any) -> str | None:
        if tag is None:
            return None
        if not isinstance(tag, str) or not 0 < len(tag) <= TAG_MAX or tag.isdigit() \
                or not all(c.isalnum() or c in "._-" for c in tag) or not tag[0].isalnum():
            raise ValidationFailed("a tag is 1-64 of A-Za-z0-9._- starting with a letter or digit, not a number",
                                   code="invalid_tag", details={"field": "tag"})
        return tag

    @staticmethod
    def _next_number(conn: sa.Connection, workflow_id: str) -> int:
        top = conn.execute(sa.select(sa.func.max(workflow_versions.c.version))
                           .where(workflow_versions.c.workflow_id == workflow_id)).scalar()
        return (top or 0) + 1

    @staticmethod
    def _move_tag(conn: sa.Connection, workflow_id: str, version_id: str, tag: str) -> None:
        conn.execute(workflow_versions.update().where(workflow_versions.c.workflow_id == workflow_id,
                                                      workflow_versions.c.tag == tag).values(tag=None))
        conn.execute(workflow_versions.update().where(workflow_versions.c.id == version_id).values(tag=tag))

    def _store_version(self, conn: sa.Connection, principal: Principal, workflow_id: str, text: str,
                       parsed: Definition, *, draft: bool, tag: str | None, now: Any) -> None:
        values = {"source": text, "definition": parsed.to_dict(), "user_id": principal.user_id, "created_at": now}
        if draft:
            existing = self._draft_row(conn, workflow_id)
            if existing is not None:  # one draft per workflow: saving again replaces it
                conn.execute(workflow_versions.update().where(workflow_versions.c.id == existing.id).values(**values))
                with self._lock:
                    self._definitions.pop(existing.id, None)
                return
            conn.execute(workflow_versions.insert().values(
                id=new_id("wfv"), workspace_id=principal.workspace_id, workflow_id=workflow_id, version=None,
                status="draft", tag=None, published_at=None, **values))
            return
        number = self._next_number(conn, workflow_id)
        version_id = new_id("wfv")
        conn.execute(workflow_versions.insert().values(
            id=version_id, workspace_id=principal.workspace_id, workflow_id=workflow_id, version=number,
            status="published", tag=None, published_at=now, **values))
        if tag is not None:
            self._move_tag(conn, workflow_id, version_id, tag)
        conn.execute(workflows.update().where(workflows.c.id == workflow_id).values(latest_version=number))

    # -- folders ---------------------------------------------------------------------------
    @staticmethod
    def _check_folder_name(name: Any) -> str:
        if not isinstance(name, str) or not 0 < len(name.strip()) <= 200 or name != name.strip():
            raise ValidationFailed("a folder name is 1-200 characters without surrounding spaces",
                                   code="invalid_folder_name", details={"field": "name"})
        return name

    def _folder_row(self, conn: sa.Connection, principal: Principal, folder_id: str) -> Any:
        row = conn.execute(sa.select(folders).where(folders.c.id == folder_id,
                                                    folders.c.workspace_id == principal.workspace_id)).first()
        if row is None:
            raise NotFound(f"folder {folder_id!r} not found", code="folder_not_found",
                           details={"folder_id": folder_id})
        return row

    def create_folder(self, principal: Principal, *, name: Any, description: Any = "") -> dict[str, Any]:
        WRITE_FOLDERS.check(principal)
        name = self._check_folder_name(name)
        if not isinstance(description, str) or len(description) > 10_000:
            raise ValidationFailed("description must be text", details={"field": "description"})
        now = utcnow()
        row = {"id": new_id("fld"), "workspace_id": principal.workspace_id, "name": name,
               "description": description, "created_at": now, "updated_at": now}
        try:
            with self.db.write() as conn:
                conn.execute(folders.insert().values(**row))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"a folder named {name!r} exists", code="folder_exists", details={"name": name}) from exc
        return folder_view(RowView(row))

    def list_folders(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page:
        READ_WORKFLOWS.check(principal)
        query = sa.select(folders).where(folders.c.workspace_id == principal.workspace_id)
        with self.db.read() as conn:
            rows, nxt, _ = paginate(conn, query, sort_col=folders.c.name, id_col=folders.c.id, descending=False,
                                    cursor=cursor, limit=limit)
        return Page([folder_view(r) for r in rows], nxt, None)

    def get_folder(self, principal: Principal, folder_id: str) -> dict[str, Any]:
        READ_WORKFLOWS.check(principal)
        with self.db.read() as conn:
            return folder_view(self._folder_row(conn, principal, folder_id))

    def update_folder(self, principal: Principal, folder_id: str, *, name: Any = None,
                      description: Any = None) -> dict[str, Any]:
        WRITE_FOLDERS.check(principal)
        values: dict[str, Any] = {"updated_at": utcnow()}
        if name is not None:
            values["name"] = self._check_folder_name(name)
        if description is not None:
            if not isinstance(description, str) or len(description) > 10_000:
                raise ValidationFailed("description must be text", details={"field": "description"})
            values["description"] = description
        try:
            with self.db.write() as conn:
                self._folder_row(conn, principal, folder_id)
                conn.execute(folders.update().where(folders.c.id == folder_id).values(**values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"a folder named {name!r} exists", code="folder_exists", details={"name": name}) from exc
        return self.get_folder(principal, folder_id)

    def delete_folder(self, principal: Principal, folder_id: str) -> None:
        WRITE_FOLDERS.check(principal)
        with self.db.write() as conn:
            self._folder_row(conn, principal, folder_id)
            used = conn.execute(sa.select(sa.func.count()).select_from(workflows).where(
                workflows.c.folder_id == folder_id, workflows.c.deleted_at.is_(None))).scalar()
            if used:
                raise Conflict(f"the folder holds {used} workflow(s); move or delete them first",
                               code="folder_not_empty", details={"workflows": used})
            conn.execute(folders.delete().where(folders.c.id == folder_id))


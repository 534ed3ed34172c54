"""Synthetic data templates: versioned documents, generation requests, quota.

Framework-free: the API maps HTTP onto these methods. Every template change stores a
new immutable version; generation always names (or defaults to) one version, so the
same version + seed + count + overrides gives the same bytes.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from runyard import synth
from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.plans import PlanService
from runyard.services.synth_sets import SAVE_SETS, SetService
from runyard.store.db import Database
from runyard.store.rows import split_joined
from runyard.store.tables import usage_events
from runyard.store.tables_synth import synth_template_versions, synth_templates
from runyard.timeutil import rfc3339, utcnow

USAGE_KIND = "synth_rows"
_VERSIONED_REF = re.compile(r"^(?P<ref>.+)@v(?P<version>\d+)$")
CREATE_TEMPLATES = Permission("member", "create templates")
UPDATE_TEMPLATES = Permission("member", "update templates")
DELETE_TEMPLATES = Permission("member", "delete templates")
GENERATE_DATA = Permission("member", "generate data")
FORMAT_OPTION_KEYS = ("dialect", "table", "rows_per_statement", "create_table", "delimiter", "header",
                      "compression", "sheet")


def synth_error(exc: synth.SynthError) -> ValidationFailed:
    """The library's refusal as a 400 in the envelope's terms (code and details kept)."""
    return ValidationFailed(exc.message, code=exc.code, details=dict(exc.details))


def split_ref(ref: str) -> tuple[str, int | None]:
    """``tpl_x@v3`` → (``tpl_x``, 3), as the DataMaker reference writes versioned reads."""
    match = _VERSIONED_REF.match(ref)
    return (match["ref"], int(match["version"])) if match else (ref, None)


def parse(document: Any) -> synth.Template:
    try:
        return synth.parse_template(document)
    except synth.SynthError as exc:
        raise synth_error(exc) from None


def template_view(head: Any, version: Any) -> dict[str, Any]:
    h, v = head._mapping, version._mapping
    document = v["document"]
    return {
        "object": "template", "id": h["id"], "name": document["name"], "description": document.get("description"),
        "locale": document.get("locale"), "fields": document["fields"], "version": v["version"],
        # Versions stored before seeding scheme 2 carry no marker: they were made under 1.
        "seeding": document.get("seeding", 1),
        "latest_version": h["latest_version"], "created_at": rfc3339(h["created_at"]),
        "updated_at": rfc3339(h["updated_at"]), "version_created_at": rfc3339(v["created_at"]),
    }


@dataclass
class Generation:
    """A validated generation: nothing can be refused any more once this exists."""

    plan: synth.Plan
    encoder: Any
    template_id: str
    format: str

    @property
    def media_type(self) -> str:
        return self.encoder.media_type

    def stream(self) -> Iterator[bytes]:
        return synth.stream(self.plan, self.format, encoder=self.encoder, workers=synth.default_workers())


class _Resolver:
    """Resolves ``reference`` fields against this workspace's templates and sets."""

    def __init__(self, service: TemplateService, workspace_id: str) -> None:
        self.service = service
        self.workspace_id = workspace_id

    def template(self, ref: str, version: int | None) -> tuple[synth.Template, int]:
        try:
            view = self.service.view(self.workspace_id, ref, version)
        except NotFound as exc:
            raise KeyError(exc.message) from None
        return parse(view_document(view)), view["version"]

    def set_column(self, name: str, column: str, version: int | None) -> pa.Array:
        return self.service.sets.column(self.workspace_id, name, column, version)


def view_document(view: Mapping[str, Any]) -> dict[str, Any]:
    doc = {"name": view["name"], "locale": view["locale"], "fields": view["fields"],
           "seeding": view.get("seeding", 1)}
    if view.get("description"):
        doc["description"] = view["description"]
    return doc


def _same_document(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as templates (the seeding scheme is the server's, not the document's)."""
    return {k: v for k, v in a.items() if k != "seeding"} == {k: v for k, v in b.items() if k != "seeding"}


class TemplateService:
    """Templates of a workspace. Each operation takes the principal and authorizes it: any
    key reads and previews; creating, changing, deleting and generating (which counts
    against the quota and may save a set) need a member."""

    def __init__(self, db: Database, sets: SetService, plans: PlanService | None = None) -> None:
        self.db = db
        self.sets = sets
        self.plans = plans  # None: no limit on generated rows

    # -- CRUD -------------------------------------------------------------------------

    def create(self, principal: Principal, document: Any) -> dict[str, Any]:
        CREATE_TEMPLATES.check(principal)
        workspace_id = principal.workspace_id
        template = parse(document)
        now = utcnow()
        template_id = new_id("tpl")
        with self.db.write() as conn:
            self._check_name_free(conn, workspace_id, template.name, None)
            conn.execute(synth_templates.insert().values(
                id=template_id, workspace_id=workspace_id, name=template.name,
                description=template.description or "", latest_version=1, created_at=now, updated_at=now))
            conn.execute(synth_template_versions.insert().values(
                id=new_id("tplv"), workspace_id=workspace_id, template_id=template_id, version=1,
                document=template.to_dict(), created_at=now))
        return self.view(workspace_id, template_id)

    def _check_name_free(self, conn: Any, workspace_id: str, name: str, own_id: str | None) -> None:
        clash = conn.execute(sa.select(synth_templates.c.id).where(
            synth_templates.c.workspace_id == workspace_id, synth_templates.c.name == name,
            synth_templates.c.deleted_at.is_(None))).first()
        if clash and clash.id != own_id:
            raise Conflict(f"a template named {name!r} already exists", code="template_exists",
                           details={"name": name, "id": clash.id})

    def _head(self, conn: Any, workspace_id: str, ref: str) -> Any:
        live = sa.and_(synth_templates.c.workspace_id == workspace_id, synth_templates.c.deleted_at.is_(None))
        head = conn.execute(sa.select(synth_templates).where(live, synth_templates.c.id == ref)).first()
        if head is None:
            head = conn.execute(sa.select(synth_templates).where(live, synth_templates.c.name == ref)).first()
        if head is None:
            raise NotFound(f"template {ref!r} not found", code="template_not_found", details={"template": ref})
        return head

    def get(self, principal: Principal, ref: str, version: int | None = None) -> dict[str, Any]:
        return self.view(principal.workspace_id, ref, version)

    def view(self, workspace_id: str, ref: str, version: int | None = None) -> dict[str, Any]:
        """A template of ``workspace_id`` (for this service and its resolver; callers use ``get``)."""
        ref, at = split_ref(ref)
        version = version or at
        with self.db.read() as conn:
            head = self._head(conn, workspace_id, ref)
            wanted = version or head.latest_version
            row = conn.execute(sa.select(synth_template_versions).where(
                synth_template_versions.c.template_id == head.id,
                synth_template_versions.c.version == wanted)).first()
        if row is None:
            raise NotFound(f"template {ref!r} has no version {wanted}", code="template_version_not_found",
                           details={"template": ref, "version": wanted})
        return template_view(head, row)

    def update(self, principal: Principal, ref: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        UPDATE_TEMPLATES.check(principal)
        workspace_id = principal.workspace_id
        allowed = {"name", "description", "locale", "fields"}
        unknown = sorted(set(patch) - allowed)
        if unknown:
            raise ValidationFailed(f"cannot update {unknown[0]!r}; updatable: {', '.join(sorted(allowed))}",
                                   details={"field": unknown[0]})
        current = self.view(workspace_id, ref)
        before = view_document(current)
        # A new version is made under the current seeding scheme; the old ones keep theirs.
        document = {**{k: v for k, v in before.items() if k != "seeding"}, **patch}
        template = parse(document)
        if _same_document(parse(before).to_dict(), template.to_dict()):
            return current  # nothing changed: no new version, outputs stay as they were
        now = utcnow()
        with self.db.write() as conn:
            head = self._head(conn, workspace_id, current["id"])
            self._check_name_free(conn, workspace_id, template.name, head.id)
            version = head.latest_version + 1
            conn.execute(synth_template_versions.insert().values(
                id=new_id("tplv"), workspace_id=workspace_id, template_id=head.id, version=version,
                document=template.to_dict(), created_at=now))
            conn.execute(synth_templates.update().where(synth_templates.c.id == head.id).values(
                name=template.name, description=template.description or "", latest_version=version,
                updated_at=now))
        return self.view(workspace_id, head.id)

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        workspace_id = principal.workspace_id
        query = sa.select(synth_templates, synth_template_versions).join(synth_template_versions, sa.and_(
            synth_template_versions.c.template_id == synth_templates.c.id,
            synth_template_versions.c.version == synth_templates.c.latest_version,
        )).where(synth_templates.c.workspace_id == workspace_id, synth_templates.c.deleted_at.is_(None))
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=synth_templates.c.id, id_col=synth_templates.c.id,
                                        descending=True, cursor=cursor, limit=limit, include_total=include_total)
        items = [template_view(*split_joined(row, synth_templates, synth_template_versions)) for row in rows]
        return Page(items, nxt, total)

    def versions(self, principal: Principal, ref: str, *, cursor: str | None, limit: int) -> Page:
        with self.db.read() as conn:
            head = self._head(conn, principal.workspace_id, split_ref(ref)[0])
            query = sa.select(synth_template_versions).where(synth_template_versions.c.template_id == head.id)
            rows, nxt, total = paginate(conn, query, sort_col=synth_template_versions.c.version,
                                        id_col=synth_template_versions.c.id, descending=True, cursor=cursor,
                                        limit=limit, include_total=True)
        return Page([template_view(head, r) for r in rows], nxt, total)

    def delete(self, principal: Principal, ref: str) -> None:
        DELETE_TEMPLATES.check(principal)
        with self.db.write() as conn:
            head = self._head(conn, principal.workspace_id, ref)
            conn.execute(synth_templates.update().where(synth_templates.c.id == head.id)
                         .values(deleted_at=utcnow()))

    # -- generation ---------------------------------------------------------------------

    def _plan(self, workspace_id: str, ref: str, body: Mapping[str, Any], count: int) -> tuple[dict[str, Any], synth.Plan]:
        version = body.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValidationFailed("version must be a positive integer", details={"field": "version"})
        view = self.view(workspace_id, ref, version)
        template = parse(view_document(view))
        overrides = body.get("overrides")
        if overrides is not None and not isinstance(overrides, dict):
            raise ValidationFailed("overrides must be an object", details={"field": "overrides"})
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | str)):
            raise ValidationFailed("seed must be an integer or a string", details={"field": "seed"})
        try:
            plan = synth.plan_generation(template, count=count, seed=seed, version=view["version"],
                                         overrides=overrides, resolver=_Resolver(self, workspace_id))
        except synth.SynthError as exc:
            raise synth_error(exc) from None
        return view, plan

    def preview(self, principal: Principal, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The first rows of the generation with this seed; never counts against quota."""
        view, plan = self._plan(principal.workspace_id, ref, body, synth.PREVIEW_ROWS)
        from runyard.synth.pipeline import iter_blocks

        table = pa.Table.from_batches(list(iter_blocks(plan)), schema=plan.schema)
        from runyard.synth.formats.jsonfmt import json_ready

        rows = [{k: json_ready(v) for k, v in r.items()} for r in table.to_pylist()]
        return {"object": "preview", "template_id": view["id"], "version": view["version"], "seed": plan.seed,
                "rows": rows}

    def preview_document(self, principal: Principal, document: Any, *, seed: int | str | None = None,
                         rows: int = synth.PREVIEW_ROWS) -> dict[str, Any]:
        """The first rows an unsaved template document (a dict, JSON or YAML text) would give:
        the web UI's editor previews as the user types. Nothing is stored or counted; any key
        may preview, as for a saved template, and references resolve in its workspace."""
        template = parse(document)
        try:
            used_seed, preview = synth.preview_rows(template, seed=seed, rows=rows,
                                                    resolver=_Resolver(self, principal.workspace_id))
        except synth.SynthError as exc:
            raise synth_error(exc) from None
        return {"object": "preview", "seed": used_seed, "rows": preview}

    def prepare(self, principal: Principal, ref: str, body: Mapping[str, Any], *, fmt: str) -> Generation:
        """Validate everything and charge the quota; the returned generation only streams."""
        GENERATE_DATA.check(principal)
        workspace_id = principal.workspace_id
        count = body.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationFailed("count must be a non-negative integer", details={"field": "count"})
        view, plan = self._plan(workspace_id, ref, body, count)
        options = dict(body.get("options") or {})
        options.update({k: body[k] for k in FORMAT_OPTION_KEYS if k in body})
        try:
            encoder = synth.make_encoder(plan, fmt, options)
        except synth.SynthError as exc:
            raise synth_error(exc) from None
        try:
            self.charge(principal, count, view["id"])
        except BaseException:
            encoder.close()
            raise
        return Generation(plan=plan, encoder=encoder, template_id=view["id"], format=fmt)

    def generate_into_set(self, principal: Principal, ref: str, body: Mapping[str, Any],
                          set_name: str) -> dict[str, Any]:
        GENERATE_DATA.check(principal)
        SAVE_SETS.check(principal)
        generation = self.prepare(principal, ref, {**body, "options": {}}, fmt="parquet")
        with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as fh:
            path = Path(fh.name)
            try:
                for piece in generation.stream():
                    fh.write(piece)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        source = {"template_id": generation.template_id, "version": generation.plan.version,
                  "seed": generation.plan.seed, "count": generation.plan.count}
        try:
            return self.sets.save_parquet(principal.workspace_id, set_name, path, source)
        finally:
            path.unlink(missing_ok=True)

    # -- quota ----------------------------------------------------------------------------

    def charge(self, principal: Principal, rows: int, template_id: str) -> None:
        """Count generated rows against the workspace plan's hourly limit (across every API
        node: services/plans.py), then record them; refuse (429 ``quota_exceeded``, nothing
        counted or generated) when they would not fit."""
        workspace_id = principal.workspace_id
        if self.plans is not None:
            self.plans.charge_rows(principal, rows)
        if rows:
            with self.db.write() as conn:
                conn.execute(usage_events.insert().values(workspace_id=workspace_id, kind=USAGE_KIND,
                                                          quantity=rows, ref_id=template_id, created_at=utcnow()))

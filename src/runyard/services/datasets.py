"""Datasets: a catalog row per dataset, rows as immutable Parquet parts plus a manifest.

Every write makes a new manifest blob and moves the catalog row's pointer to it by
compare-and-set on ``manifest_version``, so readers always see one whole snapshot, a crash
mid-write leaves the previous one intact, and no atomic rename is needed from the blob
store. Row ids (``_id``) come in blocks reserved from the catalog row, so concurrent
writers never hand out the same id and neither has to rewrite its parts when it loses the
race: it re-reads the manifest and appends again.

Replaced parts and manifests are retired, not deleted: they go once no query or result
cursor can still read them (``retention``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa

from runyard.data.coerce import RowsRejected, TooManyColumns, coerce_rows
from runyard.data.manifest import Manifest, Part
from runyard.data.parts import write_part
from runyard.data.types import COLUMN_TYPES, MAX_COLUMNS, Column, column_name_error
from runyard.ids import new_id
from runyard.services.access import Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.namespaces import (
    NamespaceAccess,
    NamespaceService,
    check_data_name,
    check_definitions,
    same_name,
)
from runyard.services.pagination import Page, paginate
from runyard.services.storage import StorageQuota, StorageQuotaExceeded  # noqa: F401  (importers keep the old name)
from runyard.services.usage import UsageRecorder
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables_data import datasets, ingestions, namespaces, retired_blobs
from runyard.timeutil import rfc3339, utcnow

log = logging.getLogger(__name__)
COMMIT_ATTEMPTS = 50
_MANIFEST_CACHE = 256


class SchemaConflict(Exception):
    """Two writers gave one new column different types; the later one coerces again."""


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of a dataset: its manifest and the local paths of its parts."""

    dataset_id: str
    namespace: str
    name: str
    manifest_key: str | None
    manifest: Manifest
    paths: list[str]

    @property
    def version(self) -> int:
        return self.manifest.version


def prefix(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/"


def merge_columns(current: list[Column], mine: list[Column]) -> list[Column]:
    """The columns after appending parts written with ``mine`` to a snapshot with ``current``:
    the union, in order, int widened to float where the two differ that way."""
    merged = {c.name: c for c in current}
    order = [c.name for c in current]
    for c in mine:
        have = merged.get(c.name)
        if have is None:
            merged[c.name] = c
            order.append(c.name)
        elif have.type != c.type:
            if {have.type, c.type} == {"int", "float"}:
                merged[c.name] = dataclasses.replace(have, type="float")
            else:
                raise SchemaConflict(c.name)
    if len(order) > MAX_COLUMNS:
        raise TooManyColumns(f"a dataset holds at most {MAX_COLUMNS} columns")
    return [merged[n] for n in order]


def appended(current: Manifest, parts: list[Part], columns: list[Column]) -> Manifest:
    """The next manifest with ``parts`` added. Their ids come from a block reserved in the
    catalog, so they overlap nothing, whatever order concurrent writers commit in."""
    return dataclasses.replace(
        current, version=current.version + 1, parts=[*current.parts, *parts],
        columns=merge_columns(current.columns, columns),
        next_id=max([current.next_id, *(p.max_id + 1 for p in parts)]),
        created_at=utcnow().isoformat())


def _columns_of(raw: Any) -> list[Column]:
    return [Column.from_dict(c) for c in raw or []]


def _check_columns(raw: list[dict[str, Any]] | None) -> list[Column]:
    columns: list[Column] = []
    for i, spec in enumerate(raw or []):
        name, kind = spec.get("name"), spec.get("type")
        problem = column_name_error(name)
        if problem:
            raise ValidationFailed(problem, code="invalid_column", details={"field": f"columns[{i}].name"})
        if kind not in COLUMN_TYPES:
            raise ValidationFailed(f"type must be one of {', '.join(COLUMN_TYPES)}", code="invalid_column",
                                   details={"field": f"columns[{i}].type"})
        columns.append(Column(name, kind))
    if len({c.name for c in columns}) != len(columns):
        raise ValidationFailed("column names must be unique", code="invalid_column", details={"field": "columns"})
    if len(columns) > MAX_COLUMNS:
        raise ValidationFailed(f"a dataset holds at most {MAX_COLUMNS} columns", code="too_many_columns")
    return columns


class DatasetService:
    def __init__(self, db: Database, blobs: BlobStore, namespaces_service: NamespaceService, usage: UsageRecorder,
                 *, storage_quota: StorageQuota | None = None, retention: timedelta = timedelta(hours=1),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.jobs: Any = None  # SandboxedJobs, set by the wiring: row pipelines run there
        self.pipeline_memory_mb = 1024
        self.pipeline_timeout_s = 300.0
        self.model_steps: Any = None  # services.model_steps.ModelSteps, set by the wiring
        self.db = db
        self.blobs = blobs
        self.namespaces = namespaces_service
        self.usage = usage
        self.storage_quota = storage_quota or StorageQuota(db)  # unlimited unless given
        self.retention = retention
        self.clock = clock
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._manifests_lock = threading.Lock()
        namespaces_service.on_delete = self._delete_namespace_data
        # Called after each committed ingestion (workspace, dataset, user): the links' work.
        # (workspace id, dataset id, user id, curate_ingestion=ingestion id or None): services.links
        self.on_ingested: Callable[..., None] = lambda ws_id, ds_id, user_id, curate_ingestion=None: None

    # -- lookups ---------------------------------------------------------------------------
    def _row(self, conn: sa.Connection, ns: NamespaceAccess, name: str) -> Any:
        row = conn.execute(sa.select(datasets).where(datasets.c.namespace_id == ns.row.id,
                                                     datasets.c.name == name)).first()
        if row is None:
            raise NotFound(f"dataset {ns.row.name}/{name} not found", code="dataset_not_found",
                           details={"namespace": ns.row.name, "dataset": name})
        return row

    def resolve(self, conn: sa.Connection, principal: Principal, namespace: str, name: str,
                wanted: str) -> tuple[NamespaceAccess, Any]:
        """The namespace and dataset rows, if the principal has ``wanted`` access to the
        dataset: 404 when it cannot see the dataset, 403 when it sees it but may not."""
        ns = self.namespaces.access(conn, principal, namespace)
        row = conn.execute(sa.select(datasets).where(datasets.c.namespace_id == ns.row.id,
                                                     datasets.c.name == name)).first()
        if row is None or ns.level(principal, row.id) is None:
            raise NotFound(f"dataset {namespace}/{name} not found", code="dataset_not_found",
                           details={"namespace": namespace, "dataset": name})
        self.namespaces.require(conn, principal, namespace, wanted, row.id)
        return ns, row

    def manifest(self, row: Any) -> Manifest:
        key = row.manifest_key
        if key is None:
            return Manifest.empty(_columns_of(row.columns), sort_order=row.sort_order)
        with self._manifests_lock:
            cached = self._manifests.get(key)
            if cached is not None:
                self._manifests.move_to_end(key)
                return cached
        manifest = Manifest.from_json(self.blobs.get_bytes(key))
        with self._manifests_lock:
            self._manifests[key] = manifest
            while len(self._manifests) > _MANIFEST_CACHE:
                self._manifests.popitem(last=False)
        return manifest

    def snapshot_of(self, row: Any, namespace: str) -> Snapshot:
        manifest = self.manifest(row)
        base = prefix(row.id)
        return Snapshot(row.id, namespace, row.name, row.manifest_key, manifest,
                        [str(self.blobs.path(base + p.key)) for p in manifest.parts])

    def snapshot_at(self, dataset_id: str, namespace: str, name: str, manifest_key: str | None) -> Snapshot:
        """A snapshot pinned by a result cursor (its manifest may be retired but not yet gone)."""
        if manifest_key is None:
            manifest = Manifest.empty()
        else:
            if not manifest_key.startswith(prefix(dataset_id)) or not self.blobs.exists(manifest_key):
                raise ValidationFailed("the cursor's snapshot is gone: run the query again", code="cursor_expired")
            manifest = Manifest.from_json(self.blobs.get_bytes(manifest_key))
        base = prefix(dataset_id)
        return Snapshot(dataset_id, namespace, name, manifest_key, manifest,
                        [str(self.blobs.path(base + p.key)) for p in manifest.parts])

    # -- views -----------------------------------------------------------------------------
    def _view(self, conn: sa.Connection, ns_name: str, row: Any, *, stats: dict[str, Any] | None = None) -> dict:
        stats = row.stats if stats is None else stats
        columns = []
        for c in _columns_of(row.columns):
            col: dict[str, Any] = {**c.to_dict(), "samples": []}
            col.update({k: v for k, v in (stats.get(c.name) or {}).items()
                        if k in ("null_count", "distinct_approx", "min", "max", "samples")})
            columns.append(col)
        last = None
        if row.last_ingestion_id:
            ing = conn.execute(sa.select(ingestions.c.id, ingestions.c.status, ingestions.c.finished_at,
                                         ingestions.c.processed_rows).where(
                ingestions.c.id == row.last_ingestion_id)).first()
            if ing is not None:
                last = {"id": ing.id, "status": ing.status, "rows": ing.processed_rows,
                        "finished_at": rfc3339(ing.finished_at)}
        return {"id": row.id, "object": "dataset", "namespace": ns_name, "name": row.name,
                "description": row.description, "field_definitions": row.field_definitions or {},
                "rows": row.row_count, "bytes": row.byte_count, "columns": columns, "sort_order": row.sort_order,
                "snapshot": row.manifest_version, "last_ingestion": last,
                "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}

    def _fresh_stats(self, row: Any, namespace: str) -> dict[str, Any]:
        """Column statistics of the current snapshot, computed on first ask after a write."""
        if row.stats_version == row.manifest_version or not row.row_count:
            return row.stats or {}
        from runyard.data.stats import column_stats
        snap = self.snapshot_of(row, namespace)
        try:
            stats = column_stats(snap.paths, snap.manifest.columns)
        except Exception as exc:  # a catalog read must not fail for want of statistics
            log.warning("statistics of dataset %s failed: %s", row.id, exc)
            return row.stats or {}
        with self.db.write() as conn:
            conn.execute(datasets.update().where(datasets.c.id == row.id,
                                                 datasets.c.manifest_version == row.manifest_version)
                         .values(stats=stats, stats_version=row.manifest_version))
        return stats

    # -- catalog operations ----------------------------------------------------------------
    def create(self, principal: Principal, namespace: str, *, name: str, description: str = "",
               field_definitions: dict[str, str] | None = None,
               columns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        check_data_name(name, "dataset")
        cols = _check_columns(columns)
        definitions = check_definitions(field_definitions)
        now = self.clock()
        with self.db.write() as conn:
            ns = self.namespaces.require(conn, principal, namespace, "write")
            if conn.execute(sa.select(datasets.c.id).where(datasets.c.namespace_id == ns.row.id,
                                                           same_name(datasets.c.name, name))).first():
                raise Conflict(f"dataset {namespace}/{name} already exists", code="dataset_exists",
                               details={"namespace": namespace, "dataset": name})
            dataset_id = new_id("ds")
            conn.execute(datasets.insert().values(
                id=dataset_id, workspace_id=principal.workspace_id, namespace_id=ns.row.id, name=name,
                description=description or "", field_definitions=definitions,
                columns=[c.to_dict() for c in cols], sort_order=None, manifest_version=0, manifest_key=None,
                next_row_id=1, row_count=0, byte_count=0, stats={}, created_by=principal.user_id,
                created_at=now, updated_at=now))
            row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).one()
            return self._view(conn, namespace, row)

    def list(self, principal: Principal, namespace: str | None = None, *, cursor: str | None = None,
             limit: int = 100, include_total: bool = False) -> Page:
        with self.db.read() as conn:
            if namespace is not None:
                visible = [self.namespaces.access(conn, principal, namespace)]
            else:
                visible = self.namespaces.visible_rows(conn, principal)
            by_ns = {ns.row.id: ns for ns in visible}
            query = sa.select(datasets).where(datasets.c.namespace_id.in_(list(by_ns)))
            if principal.grants:  # narrowed to the datasets its grants reach
                reachable = [g.namespace_id for g in principal.grants if g.dataset_id is None]
                named = [g.dataset_id for g in principal.grants if g.dataset_id]
                query = query.where(sa.or_(datasets.c.namespace_id.in_(reachable), datasets.c.id.in_(named)))
            rows, nxt, total = paginate(conn, query, sort_col=datasets.c.id, id_col=datasets.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
            return Page([self._view(conn, by_ns[r.namespace_id].row.name, r) for r in rows], nxt, total)

    def get(self, principal: Principal, namespace: str, name: str) -> dict[str, Any]:
        with self.db.read() as conn:
            _, row = self.resolve(conn, principal, namespace, name, "read")
        stats = self._fresh_stats(row, namespace)
        with self.db.read() as conn:
            return self._view(conn, namespace, row, stats=stats)

    def schema(self, principal: Principal, namespace: str | None = None) -> dict[str, Any]:
        """Every dataset the key can read, with its columns (``GET /schema``)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.list(principal, namespace, cursor=cursor, limit=1000)
            items += [{"namespace": d["namespace"], "name": d["name"], "columns": d["columns"]} for d in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        items.sort(key=lambda d: (d["namespace"], d["name"]))
        return {"object": "schema", "datasets": items}

    def update(self, principal: Principal, namespace: str, name: str, *, new_name: str | None = None,
               description: str | None = None, field_definitions: dict[str, str] | None = None,
               sort_order: list[str] | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        with self.db.write() as conn:
            ns, row = self.resolve(conn, principal, namespace, name, "write")
            if new_name is not None and new_name != name:
                check_data_name(new_name, "dataset")
                if conn.execute(sa.select(datasets.c.id).where(datasets.c.namespace_id == ns.row.id,
                                                               same_name(datasets.c.name, new_name),
                                                               datasets.c.id != row.id)).first():
                    raise Conflict(f"dataset {namespace}/{new_name} already exists", code="dataset_exists",
                                   details={"namespace": namespace, "dataset": new_name})
                values["name"] = new_name
            if description is not None:
                values["description"] = description
            if field_definitions is not None:
                values["field_definitions"] = check_definitions(field_definitions)
            if sort_order is not None:
                names = [c["name"] for c in row.columns or []]
                if not isinstance(sort_order, list) or sorted(map(str, sort_order)) != sorted(names) \
                        or len(set(sort_order)) != len(sort_order):
                    raise ValidationFailed("sort_order must list every column exactly once: "
                                           f"{', '.join(names)}", code="invalid_sort_order",
                                           details={"field": "sort_order", "columns": names})
                values["sort_order"] = list(sort_order)
            if values:
                values["updated_at"] = self.clock()
                conn.execute(datasets.update().where(datasets.c.id == row.id).values(**values))
            row = conn.execute(sa.select(datasets).where(datasets.c.id == row.id)).one()
            return self._view(conn, namespace, row)

    def clear(self, principal: Principal, namespace: str, name: str) -> dict[str, Any]:
        """All rows go (a new, empty snapshot); the catalog (columns, definitions) stays."""
        with self.db.read() as conn:
            _, row = self.resolve(conn, principal, namespace, name, "write")
        dropped: list[str] = []

        def build(current: Manifest) -> Manifest:
            dropped[:] = current.part_keys()
            return current.cleared()

        self.commit(row.id, build)
        self._retire([prefix(row.id) + k for k in dropped])
        return self.get(principal, namespace, name)

    def delete(self, principal: Principal, namespace: str, name: str) -> None:
        with self.db.write() as conn:
            _, row = self.resolve(conn, principal, namespace, name, "write")
            self._delete_rows(conn, [row.id])

    def _delete_namespace_data(self, conn: sa.Connection, namespace_id: str) -> None:
        ids = list(conn.execute(sa.select(datasets.c.id).where(datasets.c.namespace_id == namespace_id)).scalars())
        self._delete_rows(conn, ids)

    def _delete_rows(self, conn: sa.Connection, ids: list[str]) -> None:
        if not ids:
            return
        conn.execute(ingestions.update().where(ingestions.c.dataset_id.in_(ids),
                                               ingestions.c.status.in_(("pending", "processing")))
                     .values(cancel_requested=True))
        conn.execute(datasets.delete().where(datasets.c.id.in_(ids)))
        now = self.clock()
        for dataset_id in ids:  # its blobs go once no query can still be reading them
            conn.execute(retired_blobs.delete().where(retired_blobs.c.key == prefix(dataset_id)))
            conn.execute(retired_blobs.insert().values(key=prefix(dataset_id), retired_at=now))

    # -- writing ---------------------------------------------------------------------------
    def reserve_ids(self, dataset_id: str, count: int) -> int:
        """The first of ``count`` row ids no other writer of the dataset will get."""
        with self.db.write() as conn:
            first = conn.execute(datasets.update().where(datasets.c.id == dataset_id)
                                 .values(next_row_id=datasets.c.next_row_id + count)
                                 .returning(datasets.c.next_row_id)).scalar()
        if first is None:
            raise NotFound("the dataset was deleted", code="dataset_not_found")
        return int(first) - count

    def commit(self, dataset_id: str, build: Callable[[Manifest], Manifest], *,
               values: Callable[[Manifest], dict[str, Any]] | None = None) -> Manifest:
        """Make ``build(current manifest)`` the dataset's snapshot: written as a new blob,
        then published by moving the catalog pointer if nobody moved it meanwhile (else
        built again on the newer snapshot). Returns the committed manifest."""
        for _ in range(COMMIT_ATTEMPTS):
            with self.db.read() as conn:
                row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
            if row is None:
                raise NotFound("the dataset was deleted", code="dataset_not_found")
            current = self.manifest(row)
            new = build(current)
            new = dataclasses.replace(new, version=row.manifest_version + 1)
            key = f"{prefix(dataset_id)}manifests/{new.version:010d}-{uuid.uuid4().hex[:12]}.json"
            self.blobs.put_bytes(key, new.to_json())
            extra = values(new) if values else {}
            with self.db.write() as conn:
                moved = conn.execute(datasets.update().where(
                    datasets.c.id == dataset_id, datasets.c.manifest_version == row.manifest_version).values(
                    manifest_version=new.version, manifest_key=key,
                    columns=[c.to_dict() for c in new.columns], row_count=new.rows, byte_count=new.bytes,
                    updated_at=self.clock(), **extra)).rowcount
            if moved == 1:
                if row.manifest_key:
                    self._retire([row.manifest_key])
                return new
            self.blobs.path(key).unlink(missing_ok=True)  # lost the race: never published
        raise Conflict("the dataset is being written by too many writers at once; retry",
                       code="dataset_busy")

    def check_quota(self, workspace_id: str, adding: int) -> None:
        """413 ``storage_quota_exceeded`` when ``adding`` bytes would pass the workspace's
        storage quota, which counts everything it keeps (services.storage)."""
        self.storage_quota.check(workspace_id, adding)

    def parts_dir(self, dataset_id: str) -> Path:
        return self.blobs.path(prefix(dataset_id) + "parts")

    def ensure(self, principal: Principal, namespace: str, name: str, *, create: bool) -> tuple[Any, str]:
        """The dataset row to write to (made first when ``create``), authorized for write."""
        with self.db.read() as conn:
            ns = self.namespaces.access(conn, principal, namespace)
            exists = conn.execute(sa.select(datasets.c.id).where(datasets.c.namespace_id == ns.row.id,
                                                                 datasets.c.name == name)).first()
        if exists is None and create:
            try:
                self.create(principal, namespace, name=name)
            except Conflict:
                pass  # made meanwhile by a concurrent first ingestion
        with self.db.read() as conn:
            _, row = self.resolve(conn, principal, namespace, name, "write")
        return row, namespace

    def ingest_rows(self, principal: Principal, namespace: str, name: str, rows: list[Any], *,
                    create: bool = False, on_error: str = "skip", idempotency_key: str | None = None,
                    body_bytes: int = 0, pipeline: list[Any] | None = None,
                    entity_resolution: dict[str, Any] | None = None,
                    curate: bool = False, guidance: Any = None) -> dict[str, Any]:
        """Store JSON rows as one new part (one snapshot). ``Idempotency-Key``: a retried batch
        lands once, answered with the first attempt's result. ``pipeline``: steps applied to the
        rows first, in the ingest sandbox (docs/data.md, Pipelines). ``curate``: once the link
        suggestions are computed, the namespace's ontology is curated with ``activate`` (in the
        background; the outcome in the ingestion's ``attributes.curation``). Model steps in the
        pipeline run on this side (services.model_steps), guided by ``guidance``
        (``model_steps.Guidance``: description, schema definition, instructions); their calls
        are kept in the ingestion's ``attributes.trace``."""
        from runyard.data.pipeline import has_model_steps
        from runyard.services.entities import check_config
        from runyard.services.ingestions import check_pipeline

        if on_error not in ("skip", "abort"):
            raise ValidationFailed("on_error must be skip or abort", details={"field": "on_error"})
        if not isinstance(rows, list):
            raise ValidationFailed("the body must be a JSON array of row objects (or NDJSON)", code="invalid_rows")
        check_pipeline({"pipeline": pipeline})
        resolution = check_config(entity_resolution)  # 400 before anything is made
        modelled = bool(pipeline) and has_model_steps(pipeline)
        if modelled:  # 409 llm_not_configured (and the like) before anything is made
            guidance = self.model_guidance(principal, namespace, name, guidance)
            self.model_steps.check(principal, pipeline, guidance)
        row, _ = self.ensure(principal, namespace, name, create=create)
        request_hash = hashlib.sha256(repr((namespace, name, on_error, body_bytes, len(rows),
                                            orjson.dumps(pipeline) if pipeline else None)
                                           + ((True,) if curate else ())
                                           + ((resolution.to_dict(),) if resolution else ())).encode()).hexdigest()
        ingestion_id = new_id("ing")
        now = self.clock()
        record = {"id": ingestion_id, "workspace_id": principal.workspace_id, "dataset_id": row.id,
                  "namespace_id": row.namespace_id, "user_id": principal.user_id, "token_id": principal.token_id,
                  "kind": "rows", "status": "processing",
                  "source": {"rows": len(rows), **({"options": {
                      **({"pipeline": pipeline} if pipeline else {}),
                      **({"entity_resolution": resolution.to_dict()} if resolution else {})}}
                      if pipeline or resolution else {})},
                  "processed_bytes": 0, "expected_total_bytes": body_bytes, "processed_rows": 0, "failed_rows": 0,
                  "attributes": {"curation": {"status": "pending"}} if curate else {}, "seen": False,
                  "idempotency_key": idempotency_key,
                  "request_hash": request_hash, "attempt": 1, "max_attempts": 1, "cancel_requested": False,
                  "created_at": now, "started_at": now}
        if idempotency_key is not None:
            replay = self._claim_idempotency(principal.workspace_id, idempotency_key, request_hash, record)
            if replay is not None:
                return replay
        else:
            with self.db.write() as conn:
                conn.execute(ingestions.insert().values(**record))
        from runyard.services.model_steps import Trace

        trace = Trace()
        try:
            result = self._store_rows(row.id, ingestion_id, rows, on_error, body_bytes, principal, pipeline,
                                      guidance=guidance, trace=trace if modelled else None,
                                      entity_resolution=resolution)
        except BaseException as exc:
            message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            with self.db.write() as conn:  # a failed attempt frees its key: a retry runs again
                conn.execute(ingestions.update().where(ingestions.c.id == ingestion_id).values(
                    status="failed", status_message=message, idempotency_key=None, finished_at=self.clock(),
                    **({"attributes": {"trace": trace.to_dict()}} if trace else {})))
            raise
        extra: dict[str, Any] = {}
        if modelled:
            traced = trace.to_dict()
            result = {**result, "model_calls": {k: v for k, v in traced.items() if k != "calls"}}
            extra["attributes"] = {"trace": traced}
        if curate:
            result = {**result, "curation": {"status": "pending"} if result["ingested"] else
                      {"status": "skipped", "reason": "no rows were ingested"}}
            extra["attributes"] = {**extra.get("attributes", {}), "curation": result["curation"]}
        if result.get("entity_resolution"):
            extra["attributes"] = {**extra.get("attributes", {}), "entity_resolution": result["entity_resolution"]}
        with self.db.write() as conn:
            conn.execute(ingestions.update().where(ingestions.c.id == ingestion_id).values(
                status="succeeded", processed_rows=result["ingested"], failed_rows=len(result["failed"]),
                processed_bytes=body_bytes, result=result, snapshot=result["snapshot"], finished_at=self.clock(),
                **extra))
            conn.execute(datasets.update().where(datasets.c.id == row.id).values(last_ingestion_id=ingestion_id))
        if result["ingested"]:
            self.on_ingested(principal.workspace_id, row.id, principal.user_id,
                             curate_ingestion=ingestion_id if curate else None)
        return result

    def _claim_idempotency(self, workspace_id: str, key: str, request_hash: str,
                           record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            with self.db.write() as conn:
                conn.execute(ingestions.insert().values(**record))
            return None
        except sa.exc.IntegrityError:
            pass
        with self.db.read() as conn:
            prior = conn.execute(sa.select(ingestions).where(ingestions.c.workspace_id == workspace_id,
                                                             ingestions.c.idempotency_key == key)).first()
        if prior is None:  # its attempt failed meanwhile and freed the key
            raise Conflict("a request with this Idempotency-Key just failed; retry", code="idempotency_retry")
        if prior.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was used for a different request", code="idempotency_conflict")
        if prior.status != "succeeded":
            raise Conflict("a request with this Idempotency-Key is still being processed",
                           code="ingestion_in_progress", details={"ingestion_id": prior.id})
        return dict(prior.result or {})

    def model_guidance(self, principal: Principal, namespace: str, name: str, guidance: Any = None) -> Any:
        """``guidance`` with the dataset's saved field definitions (when it exists and this key
        reads it): what model steps tell the model besides the rows."""
        from runyard.services.model_steps import Guidance

        found = dataclasses.replace(guidance) if guidance is not None else Guidance()
        try:
            with self.db.read() as conn:
                _, row = self.resolve(conn, principal, namespace, name, "read")
        except (NotFound, DomainError):
            return found
        if row.field_definitions and found.field_definitions is None:
            found.field_definitions = {str(k): str(v or "") for k, v in dict(row.field_definitions).items()}
        if row.description and not found.data_description:
            found.data_description = row.description
        return found

    def run_pipeline(self, principal: Principal, rows: list[Any], pipeline: list[Any], *, guidance: Any = None,
                     trace: Any = None, ref_id: str | None = None,
                     first_index: int = 0) -> tuple[pa.Table, list[int], list[dict[str, Any]]]:
        """``rows`` through the pipeline: its deterministic segments in the ingest sandbox, its
        model steps here (services.model_steps). As ``_piped_rows``."""
        from runyard.data.pipeline import has_model_steps

        if not has_model_steps(pipeline):
            return self._piped_rows(rows, pipeline, first_index)
        return self.model_steps.run_rows(principal, rows, pipeline,
                                         lambda part, steps, first: self._piped_rows(part, steps, first),
                                         guidance=guidance, trace=trace, ref_id=ref_id, first_index=first_index)

    def _piped_rows(self, rows: list[Any], pipeline: list[Any],
                    first_index: int = 0) -> tuple[pa.Table, list[int], list[dict[str, Any]]]:
        """``rows`` through the pipeline in the ingest sandbox: the table that came out, each of
        its rows' index in ``rows``, and the rows a step rejected."""
        if self.jobs is None:
            raise RuntimeError("row pipelines need the ingest sandbox (DatasetService.jobs)")
        job = self.jobs.run("pipeline_rows", {"rows": rows, "pipeline": pipeline, "first_index": first_index},
                            read_paths=[],
                            memory_mb=self.pipeline_memory_mb, timeout_s=self.pipeline_timeout_s)
        try:
            result = job.value
            if "error" in result:
                error = result["error"]
                raise ValidationFailed(str(error.get("message")), code=str(error.get("code") or "pipeline_failed"),
                                       details={"step": error.get("step")})
            path = job.output_dir / "batch.arrow"
            if not path.is_file() or path.is_symlink():
                raise DomainError("the pipeline did not write its batch", code="invalid_job_output")
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            if "_row" not in table.column_names or table.num_rows != int(result.get("rows", -1)):
                raise DomainError("the pipeline's batch does not match its report", code="invalid_job_output")
            origin = table.column("_row").to_pylist()
            if any(not isinstance(i, int) or not 0 <= i < len(rows) for i in origin):
                raise DomainError("the pipeline's batch names rows that were not sent", code="invalid_job_output")
            table = table.drop_columns(["_row"])
            failed = [{"index": int(f["index"]), "row": rows[int(f["index"])], "errors": dict(f["errors"])}
                      for f in result.get("failed") or [] if 0 <= int(f["index"]) < len(rows)]
            return table, origin, failed
        finally:
            job.cleanup()

    def _store_rows(self, dataset_id: str, ingestion_id: str, rows: list[Any], on_error: str, body_bytes: int,
                    principal: Principal, pipeline: list[Any] | None = None, *, guidance: Any = None,
                    trace: Any = None, entity_resolution: Any = None) -> dict[str, Any]:
        piped = self.run_pipeline(principal, rows, pipeline, guidance=guidance, trace=trace,
                                  ref_id=ingestion_id) if pipeline else None
        for _ in range(5):
            with self.db.read() as conn:
                row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
            if row is None:
                raise NotFound("the dataset was deleted", code="dataset_not_found")
            columns = _columns_of(row.columns)
            try:
                if piped is not None:
                    coerced = _conformed(piped, rows, columns, on_error)
                else:
                    coerced = coerce_rows(rows, columns, on_error=on_error)  # type: ignore[arg-type]
            except RowsRejected as exc:
                raise ValidationFailed(str(exc), code="rows_rejected", details={"failed": exc.failed[:100]}) from exc
            except TooManyColumns as exc:
                raise ValidationFailed(str(exc), code="too_many_columns") from exc
            table = coerced.table
            if table.num_rows == 0 and coerced.columns == columns:
                return {"object": "ingestion_result", "ingestion_id": ingestion_id, "ingested": 0,
                        "failed": coerced.failed, "snapshot": row.manifest_version}
            self.check_quota(principal.workspace_id, body_bytes)
            parts: list[Part] = []
            if table.num_rows:
                first = self.reserve_ids(dataset_id, table.num_rows)
                _, part = write_part(table, self.parts_dir(dataset_id), first_id=first, ingestion_id=ingestion_id,
                                     ingested_at=self.clock(), columns=coerced.columns)
                parts.append(part)
            report: dict[str, Any] | None = None
            try:
                if entity_resolution is not None:
                    from runyard.services.entities import report as entity_report
                    from runyard.services.entities import resolve_and_commit
                    raw = [(self.blobs.path(prefix(dataset_id) + p.key), p) for p in parts]
                    parts = []  # resolve_and_commit removes the raw parts whatever happens
                    manifest, resolved = resolve_and_commit(self, dataset_id, ingestion_id, raw, coerced.columns,
                                                            entity_resolution)
                    report = entity_report(entity_resolution, resolved)
                else:
                    manifest = self.commit(dataset_id, lambda current, parts=parts, cols=coerced.columns:
                                           appended(current, parts, cols))
            except SchemaConflict:
                for part in parts:  # a concurrent writer typed a new column otherwise: coerce again
                    self.blobs.path(prefix(dataset_id) + part.key).unlink(missing_ok=True)
                continue
            except BaseException:
                for part in parts:
                    self.blobs.path(prefix(dataset_id) + part.key).unlink(missing_ok=True)
                raise
            self.usage.record(principal.workspace_id, "ingested_rows", table.num_rows, ref_id=ingestion_id,
                              user_id=principal.user_id)
            self.usage.record(principal.workspace_id, "ingested_bytes", body_bytes, ref_id=ingestion_id,
                              user_id=principal.user_id)
            return {"object": "ingestion_result", "ingestion_id": ingestion_id, "ingested": table.num_rows,
                    "failed": coerced.failed, "snapshot": manifest.version,
                    **({"entity_resolution": report} if report is not None else {})}
        raise Conflict("concurrent writers keep giving new columns different types", code="schema_conflict")

    # -- retirement and compaction ---------------------------------------------------------
    def _retire(self, keys: list[str]) -> None:
        if not keys:
            return
        now = self.clock()
        with self.db.write() as conn:
            existing = set(conn.execute(sa.select(retired_blobs.c.key).where(retired_blobs.c.key.in_(keys)))
                           .scalars())
            fresh = [{"key": k, "retired_at": now} for k in dict.fromkeys(keys) if k not in existing]
            if fresh:
                conn.execute(retired_blobs.insert(), fresh)

    def sweep(self) -> int:
        """Delete what was retired longer ago than the longest query and cursor lifetime."""
        cutoff = self.clock() - self.retention
        with self.db.read() as conn:
            keys = list(conn.execute(sa.select(retired_blobs.c.key).where(retired_blobs.c.retired_at < cutoff)
                                     .limit(1000)).scalars())
        for key in keys:
            if key.endswith("/"):
                self.blobs.delete_prefix(key)
            else:
                self.blobs.path(key).unlink(missing_ok=True)
        if keys:
            with self.db.write() as conn:
                conn.execute(retired_blobs.delete().where(retired_blobs.c.key.in_(keys)))
        return len(keys)

    def compact(self, dataset_id: str, *, small_part_rows: int = 100_000, min_parts: int = 8) -> int:
        """Merge runs of small parts into bigger ones (one commit per merged group)."""
        from runyard.data.compaction import compact, plan_compaction
        with self.db.read() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
        if row is None:
            return 0
        manifest = self.manifest(row)
        merged = 0
        base = prefix(dataset_id)
        for group in plan_compaction(manifest, small_part_rows=small_part_rows, min_parts=min_parts):
            keys = [p.key for p in group]
            path, part = compact([str(self.blobs.path(base + k)) for k in keys], manifest.columns,
                                 self.parts_dir(dataset_id))
            try:
                self.commit(dataset_id, lambda current, keys=keys, part=part: current.replaced(keys, part))
            except (ValueError, NotFound):
                path.unlink(missing_ok=True)  # a clear or another compaction got there first
                continue
            self._retire([base + k for k in keys])
            merged += len(keys)
        return merged

    def compaction_candidates(self, min_parts: int = 8) -> list[str]:
        """Datasets whose current snapshot has many parts (checked from their manifests)."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(datasets).where(datasets.c.manifest_key.is_not(None))
                                .order_by(datasets.c.updated_at.desc()).limit(200)).all()
        return [r.id for r in rows if len(self.manifest(r).parts) >= min_parts]

    def namespace_names(self, conn: sa.Connection, namespace_ids: list[str]) -> dict[str, str]:
        return dict(conn.execute(sa.select(namespaces.c.id, namespaces.c.name).where(
            namespaces.c.id.in_(namespace_ids))).all())


def _conformed(piped: tuple[Any, list[int], list[dict[str, Any]]], rows: list[Any], columns: list[Column],
               on_error: str) -> Any:
    """A pipeline's output table fitted to the dataset's columns (as a file's batches are), the
    rows the pipeline or the fitting rejected listed by their index in ``rows``."""
    from runyard.data.coerce import Coerced
    from runyard.data.jobs import conform

    table, origin, failed = piped
    fitted, cols, bad = conform(table, list(columns))
    failed = sorted(failed + [{"index": origin[i], "row": rows[origin[i]], "errors": errs}
                              for i, errs in bad.items()], key=lambda f: f["index"])
    if failed and on_error == "abort":
        raise RowsRejected(failed[:1])
    return Coerced(table=fitted, columns=cols, failed=failed)

"""Entity resolution on ingest, on the service side: the config checked as a request input, an
ingestion's parts resolved against the dataset's snapshot and committed as one new snapshot,
and the per-row report (bounded in the result, whole in a blob read page by page).

Crash safety is the datasets' own: the resolved parts and the rewrites of the parts that lose
rows are new files, published by one manifest compare-and-set. A writer that dies before it
leaves the previous snapshot (its files are never referenced); one that loses the race to
another writer resolves again against the newer snapshot, so an entity is never matched
against a stale view; the parts it replaced are retired, not deleted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from runyard.data.entities import EntityResolution, EntityResolutionError, Resolution, parse_config, resolve
from runyard.data.manifest import Manifest, Part
from runyard.data.types import Column
from runyard.services.datasets import COMMIT_ATTEMPTS, DatasetService, merge_columns, prefix
from runyard.services.errors import Conflict, NotFound, ValidationFailed
from runyard.store.tables_data import datasets
from runyard.timeutil import utcnow

REPORT_CAP = 1000  # per-row entries inline in a result; the rest by GET /ingestions/{id}/entities
CODE = "invalid_entity_resolution"


def entities_key(ingestion_id: str) -> str:
    return f"ingestions/{ingestion_id}/entities.ndjson"


def check_config(raw: Any, field: str = "entity_resolution") -> EntityResolution | None:
    """The parsed config, or a 400 ``invalid_entity_resolution`` naming what is wrong."""
    if raw is None:
        return None
    try:
        return parse_config(raw)
    except EntityResolutionError as exc:
        raise ValidationFailed(f"entity_resolution: {exc}", code=CODE,
                               details={"field": f"{field}.{exc.field}" if exc.field else field}) from None


class _StaleSnapshot(Exception):
    """The dataset moved on since the resolution read it: resolve again."""


def report(config: EntityResolution, resolution: Resolution) -> dict[str, Any]:
    """The bounded report of a resolution: counts always, the first REPORT_CAP rows' entries."""
    total = len(resolution.action)
    return {"match_type": config.match_type, "columns": list(config.columns), "policy": config.policy,
            "counts": resolution.counts(), "stored_rows": resolution.stored_rows,
            "excluded": resolution.excluded, "entities": resolution.entries(0, REPORT_CAP),
            "entities_total": total, "entities_truncated": total > REPORT_CAP}


def preview_entities(found: dict[str, Any], config: EntityResolution) -> dict[str, Any]:
    """A preview's rows resolved among themselves (a preview has no dataset to match against):
    ``created`` for an entity's first row, ``matched`` for a later one; a preview's entity id
    is the position (from 1) of the entity's first row."""
    import tempfile
    from datetime import UTC, datetime

    from runyard.data.coerce import coerce_rows
    from runyard.data.parts import write_part

    columns = [Column(str(c["name"]), c["type"]) for c in found.get("columns") or [] if c.get("type")]
    rows = list(found.get("rows") or [])
    coerced = coerce_rows(rows, columns, on_error="skip")
    with tempfile.TemporaryDirectory(prefix="runyard-preview-") as tmp:
        try:
            if coerced.table.num_rows:
                path, _ = write_part(coerced.table, Path(tmp), first_id=1, ingestion_id="preview",
                                     ingested_at=datetime.now(UTC), columns=coerced.columns)
                paths = [str(path)]
            else:
                paths = []
            resolution = resolve([], paths, coerced.columns, config, directory=Path(tmp), ingestion_id="preview",
                                 store=False)
        except EntityResolutionError as exc:
            raise ValidationFailed(f"entity_resolution: {exc}", code=CODE, details={
                "field": f"options.entity_resolution.{exc.field}" if exc.field else "options.entity_resolution"
            }) from None
    return {**report(config, resolution), "stored_rows": resolution.counts()["created"]}


def resolve_and_commit(service: DatasetService, dataset_id: str, ingestion_id: str, raw: list[tuple[Path, Part]],
                       columns: list[Column], config: EntityResolution, *, memory_mb: int = 1024,
                       values: Any = None) -> tuple[Manifest, Resolution]:
    """Resolve the rows of the ingestion's ``raw`` parts (written with ``columns``, not yet
    published) against the dataset's current snapshot and commit what the policy stores.
    The raw parts are removed in every case; the full report goes to ``entities_key``."""
    base = prefix(dataset_id)
    raw_paths = [str(path) for path, _ in raw]
    try:
        for _ in range(COMMIT_ATTEMPTS):
            with service.db.read() as conn:
                row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
            if row is None:
                raise NotFound("the dataset was deleted", code="dataset_not_found")
            current = service.manifest(row)
            merged = merge_columns(current.columns, columns)
            old = [(p.key, str(service.blobs.path(base + p.key)), p) for p in current.parts]
            try:
                resolution = resolve(old, raw_paths, merged, config, directory=service.parts_dir(dataset_id),
                                     ingestion_id=ingestion_id, memory_mb=memory_mb)
            except EntityResolutionError as exc:
                raise ValidationFailed(f"entity_resolution: {exc}", code=CODE,
                                       details={"field": f"entity_resolution.{exc.field}" if exc.field
                                                else "entity_resolution"}) from None

            def build(latest: Manifest, current: Manifest = current, resolution: Resolution = resolution,
                      merged: list[Column] = merged) -> Manifest:
                if latest.version != current.version:
                    raise _StaleSnapshot
                parts: list[Part] = []
                for p in latest.parts:
                    if p.key in resolution.replaced:
                        parts += [q for _, q in resolution.replaced[p.key]]
                    else:
                        parts.append(p)
                added = [p for _, p in resolution.new_parts]
                return dataclasses.replace(latest, version=latest.version + 1, parts=parts + added, columns=merged,
                                           next_id=max([latest.next_id, *(p.max_id + 1 for p in added)]),
                                           created_at=utcnow().isoformat())

            service.blobs.put_bytes(entities_key(ingestion_id), b"".join(
                orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in resolution.entries()))
            try:
                manifest = service.commit(dataset_id, build, values=values)
            except _StaleSnapshot:
                resolution.discard()
                continue
            except BaseException:
                resolution.discard()
                raise
            service._retire([base + key for key in resolution.replaced])
            return manifest, resolution
        raise Conflict("the dataset is being written by too many writers at once; retry", code="dataset_busy")
    finally:
        for path in raw_paths:
            Path(path).unlink(missing_ok=True)

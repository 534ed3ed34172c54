"""Read-only SQL over datasets, run in the sandbox over pinned snapshots.

The query is checked and the datasets it names are authorized before anything runs (403
``dataset_access_denied`` for any it may not read). The snapshots of those datasets are
pinned, their part files are the only files the sandboxed DuckDB may open, and the result
is written to the job's output dir, then returned as JSON (capped, paged by cursor) or
streamed as NDJSON, CSV, Parquet or Arrow. Cursors carry the pinned snapshots, so every
page reads the same data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from runyard.data.sql import QueryRejected, referenced_datasets
from runyard.services.access import Principal
from runyard.services.datasets import DatasetService, Snapshot
from runyard.services.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from runyard.services.sandboxed import JobOutput, SandboxedJobs
from runyard.services.usage import UsageRecorder
from runyard.store.db import Database
from runyard.timeutil import utcnow

CONTENT_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
                 "parquet": "application/vnd.apache.parquet", "arrow": "application/vnd.apache.arrow.stream"}
FAILURE_STATUS = {"query_timeout": 400, "query_memory_limit": 400, "query_error": 400, "query_interrupted": 400}


class QueryFailure(DomainError):
    status = 400
    code = "query_error"


@dataclass
class QueryStream:
    """A non-JSON result: the file to stream, then ``close`` to remove it."""

    path: Path
    content_type: str
    job: JobOutput

    def close(self) -> None:
        self.job.cleanup()


class QueryService:
    def __init__(self, db: Database, datasets_service: DatasetService, jobs: SandboxedJobs, usage: UsageRecorder,
                 signing_key: bytes, *, timeout_s: float = 30.0, memory_mb: int = 2048, temp_mb: int = 4096,
                 row_cap: int = 10_000, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.datasets = datasets_service
        self.jobs = jobs
        self.usage = usage
        self.signing_key = signing_key
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.temp_mb = temp_mb
        self.row_cap = row_cap
        self.clock = clock

    # -- cursors: the pinned snapshots and the position, signed so they cannot be forged --
    def _encode_cursor(self, state: dict[str, Any]) -> str:
        body = orjson.dumps(state)
        mac = hmac.new(self.signing_key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def _decode_cursor(self, cursor: str) -> dict[str, Any]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            mac, body = raw[:16], raw[16:]
            if hmac.compare_digest(mac, hmac.new(self.signing_key, body, hashlib.sha256).digest()[:16]):
                state = orjson.loads(body)
                if isinstance(state, dict):
                    return state
        except (ValueError, orjson.JSONDecodeError):
            pass
        raise ValidationFailed("cursor is malformed", code="invalid_cursor")

    # -- running ---------------------------------------------------------------------------
    def _snapshots(self, principal: Principal, names: list[tuple[str, str]],
                   pinned: dict[str, str | None] | None) -> list[Snapshot]:
        snaps: list[Snapshot] = []
        with self.db.read() as conn:
            for namespace, name in names:
                try:
                    _, row = self.datasets.resolve(conn, principal, namespace, name, "read")
                except (NotFound, PermissionDenied):
                    raise PermissionDenied(f'dataset "{namespace}"."{name}" does not exist or this key cannot read it',
                                           code="dataset_access_denied",
                                           details={"namespace": namespace, "dataset": name}) from None
                if pinned is not None:
                    if row.id not in pinned:
                        raise ValidationFailed("the cursor does not belong to this query", code="invalid_cursor")
                    snaps.append(self.datasets.snapshot_at(row.id, namespace, name, pinned[row.id]))
                else:
                    snaps.append(self.datasets.snapshot_of(row, namespace))
        return snaps

    def join_links(self, snaps: list[Snapshot], default_namespace: str | None) -> list[dict[str, Any]]:
        """The active links between the datasets a query reads (``explain``), each with a join
        condition to use. Every snapshot here was authorized for read, so the key reads both
        ends of each link."""
        from runyard.store.tables_links import links

        by_id = {s.dataset_id: s for s in snaps}
        if len(by_id) < 2:
            return []
        with self.db.read() as conn:
            rows = conn.execute(sa.select(links).where(
                links.c.status == "active", links.c.from_dataset_id.in_(list(by_id)),
                links.c.to_dataset_id.in_(list(by_id))).order_by(links.c.created_at, links.c.id)).all()
        out = []
        for row in rows:
            out.append(join_hint(row, by_id[row.from_dataset_id], by_id[row.to_dataset_id], default_namespace))
        return out

    def run(self, principal: Principal, *, query: str, namespace: str | None = None, dataset: str | None = None,
            include_metadata: bool = False, explain: bool = False, format: str = "json", limit: int | None = None,
            cursor: str | None = None, timeout_s: float | None = None) -> dict[str, Any] | QueryStream:
        state = self._decode_cursor(cursor) if cursor else None
        if state is not None and state.get("q") != hashlib.sha256(query.encode()).hexdigest()[:16]:
            raise ValidationFailed("the cursor belongs to another query", code="invalid_cursor")
        select_all = query.strip() == "*"
        if select_all:
            if not dataset or not namespace:
                raise ValidationFailed('"*" reads all rows of one dataset: give namespace and dataset',
                                       code="missing_dataset", details={"field": "dataset"})
            names = [(namespace, dataset)]
        else:
            try:
                names = referenced_datasets(query, namespace)
            except QueryRejected as exc:
                raise ValidationFailed(exc.message, code=exc.code) from None
        snaps = self._snapshots(principal, names, state.get("s") if state else None)
        timeout = min(timeout_s or self.timeout_s, self.timeout_s)
        cap = self.row_cap if format == "json" else None
        page = min(limit, cap) if (limit and cap) else (limit or cap)
        offset = int(state.get("o", 0)) if state else 0
        sql: str | None = None
        offset_id = int(state["i"]) if state and "i" in state else None
        if not select_all:
            sql = query.strip().rstrip(";")
            if offset:
                sql = f"SELECT * FROM ({sql}) AS paged_result OFFSET {offset}"
        sources = [{"namespace": s.namespace, "name": s.name, "paths": s.paths,
                    "columns": [c.to_dict() for c in s.manifest.columns], "snapshot": s.version} for s in snaps]
        started = time.monotonic()
        job = self.jobs.run("query", {
            "query": sql, "sources": sources, "select_all": f"{namespace}.{dataset}" if select_all else None,
            "default_namespace": namespace, "include_metadata": include_metadata, "limit": page,
            "offset_id": offset_id, "memory_limit_mb": self.memory_mb, "max_temp_mb": self.temp_mb,
            "timeout_s": timeout, "explain": explain, "format": "json" if explain else format},
            read_paths=[p for s in snaps for p in s.paths], memory_mb=self.memory_mb + 512, timeout_s=timeout + 15)
        elapsed = time.monotonic() - started
        self.usage.record(principal.workspace_id, "query_seconds", round(elapsed, 6), user_id=principal.user_id)
        outcome = job.value
        if "error" in outcome:
            job.cleanup()
            error = outcome["error"]
            raise QueryFailure(error.get("message") or "the query failed", code=error.get("code") or "query_error",
                               status=FAILURE_STATUS.get(error.get("code"), 400))
        if explain:
            job.cleanup()
            return {"object": "query_result", "columns": [], "rows": [], "row_count": 0, "truncated": False,
                    "next_cursor": None, "elapsed_ms": round(elapsed * 1000, 1), "explain": outcome.get("explain"),
                    "links": self.join_links(snaps, namespace)}
        path = job.output_dir / str(outcome.get("file") or "result")
        if format != "json":
            return QueryStream(path, CONTENT_TYPES[format], job)
        try:
            document = orjson.loads(path.read_bytes())
        finally:
            job.cleanup()
        rows = document.get("rows") or []
        truncated = bool(document.get("truncated"))
        next_cursor = None
        if truncated:
            pinned = {s.dataset_id: s.manifest_key for s in snaps}
            nxt: dict[str, Any] = {"q": hashlib.sha256(query.encode()).hexdigest()[:16], "s": pinned}
            if select_all and document.get("last_id") is not None:
                nxt["i"] = int(document["last_id"])
            else:
                nxt["o"] = offset + len(rows)
            next_cursor = self._encode_cursor(nxt)
        return {"object": "query_result", "columns": document.get("columns") or outcome.get("columns") or [],
                "rows": rows, "row_count": len(rows), "truncated": truncated, "next_cursor": next_cursor,
                "elapsed_ms": round(elapsed * 1000, 1), "explain": None}


_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")


def _ident(name: str) -> str:
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def join_hint(row: Any, a: Snapshot, b: Snapshot, default_namespace: str | None) -> dict[str, Any]:
    """One link as ``explain`` shows it: the ends (as the query names the datasets), the
    match type and options, and a ``join_condition`` in DuckDB SQL with a ``note``."""

    def table(s: Snapshot) -> str:
        return _ident(s.name) if s.namespace == default_namespace else f"{_ident(s.namespace)}.{_ident(s.name)}"

    def col(s: Snapshot, name: str) -> str:
        return f"{table(s)}.{_ident(name)}"

    def typ(s: Snapshot, name: str) -> str | None:
        return next((c.type for c in s.manifest.columns if c.name == name), None)

    fc, tc = list(row.from_columns), list(row.to_columns)
    view = {"id": row.id, "match_type": row.match_type, "options": row.options or {},
            "from": {"namespace": a.namespace, "dataset": a.name, "columns": fc, "table": table(a)},
            "to": {"namespace": b.namespace, "dataset": b.name, "columns": tc, "table": table(b)},
            "score": row.score, "pair_count": row.pair_count}
    if row.match_type == "ExactMatch":
        x, y = col(a, fc[0]), col(b, tc[0])
        types = {typ(a, fc[0]), typ(b, tc[0])}
        if len(types) == 1 and types <= {"int", "date", "bool"}:
            view["join_condition"] = f"{x} = {y}"
            view["note"] = "values equal as they are stored"
        else:
            view["join_condition"] = (f"lower(trim(CAST({x} AS VARCHAR))) = lower(trim(CAST({y} AS VARCHAR)))")
            view["note"] = ("the link matches values after normalisation (Unicode NFKC, case-folded, trimmed): "
                            "the condition approximates it with lower(trim(...)); "
                            f"{x} = {y} misses the pairs that differ only in case or spaces")
    elif row.match_type == "GeoMatch":
        options = row.options or {}
        unit = options.get("unit", "km")
        radius = {"km": 6371.0088, "m": 6371008.8, "mi": 3958.7613}.get(unit, 6371.0088)
        distance = options.get("distance", 1)
        if len(fc) == 2 and len(tc) == 2:
            lat1, lon1, lat2, lon2 = col(a, fc[0]), col(a, fc[1]), col(b, tc[0]), col(b, tc[1])
            view["join_condition"] = (
                f"2 * {radius} * asin(sqrt(pow(sin(radians({lat2} - {lat1}) / 2), 2) + cos(radians({lat1})) "
                f"* cos(radians({lat2})) * pow(sin(radians({lon2} - {lon1}) / 2), 2))) <= {distance}")
            view["note"] = (f"points within {distance} {unit} (great-circle distance); the link's pairs "
                            f"(GET /links/{row.id}/pairs) are computed without comparing all pairs")
        else:
            view["join_condition"] = None
            view["note"] = (f"points within {distance} {unit} of each other: join on the link's pairs "
                            f"(GET /links/{row.id}/pairs)")
    else:
        view["join_condition"] = None
        view["note"] = f"join on the link's pairs (GET /links/{row.id}/pairs)"
    return view

"""Links between datasets: active (made by hand) and suggested (after each ingestion).

A link joins a column (or a latitude/longitude pair, or a geo column) of one dataset with
one of another by a match type (``runyard.data.links``: ExactMatch, GeoMatch). Its matched
row pairs are computed over the two current snapshots and kept as one Parquet blob; its row
in ``links`` holds the score and evidence. A link, its evidence and its pairs are visible
only to keys that can read both ends: to any other key it does not exist (404).

Suggestions are scored from per-column sketches (``column_sketches``), computed once per
snapshot, so an ingestion re-sketches only its own dataset. The work after an ingestion runs
on one background thread (``after_ingestion``), bounded: a user who can see more than
``max_datasets`` datasets gets suggestions against the most recently written ones only.

DuckDB runs here with a memory limit and a thread limit, off the event loop (the API calls
every operation in a worker thread).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa

from runyard.data import links as L
from runyard.data.manifest import Manifest
from runyard.data.parts import quote_ident, read_parts_sql
from runyard.data.types import ROW_ID, Column
from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.datasets import DatasetService
from runyard.services.errors import NotFound, ValidationFailed
from runyard.services.namespaces import NamespaceAccess, at_least
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.tables_data import datasets, namespaces, users
from runyard.store.tables_links import column_sketches, links
from runyard.timeutil import rfc3339, utcnow

log = logging.getLogger(__name__)
CHANGE_LINKS = Permission("member", "create, recalculate or delete links")
MIN_SCORE = 0.5  # a suggestion's containment (of the smaller column in the other) at least this
SUGGEST_OPTIONS = L.ExactMatch(min_distinct=10, min_variation=0.01)
MAX_PAGE = 1000
MAX_LINKED = 100


# Evidence fields that name one end of a link, and their counterpart at the other end.
_EVIDENCE_ENDS = (("from_distinct", "to_distinct"), ("containment_a", "containment_b"),
                  ("containment_left", "containment_right"))


def reversed_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """``evidence`` as seen from the other end of the link."""
    out = dict(evidence)
    for one, other in _EVIDENCE_ENDS:
        if one in evidence or other in evidence:
            out[one], out[other] = evidence.get(other), evidence.get(one)
    return out


class LinkService:
    def __init__(self, db: Database, blobs: BlobStore, datasets_service: DatasetService, *, memory_mb: int = 2048,
                 threads: int = 2, max_pairs: int = 5_000_000, max_datasets: int = 200,
                 max_sketch_rows: int = 20_000_000, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.blobs = blobs
        self.datasets = datasets_service
        self.namespaces = datasets_service.namespaces
        self.memory_mb = memory_mb
        self.threads = threads
        self.max_pairs = max_pairs
        self.max_datasets = max_datasets
        self.max_sketch_rows = max_sketch_rows
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runyard-links")
        self._queued: set[str] = set()
        self._curations: dict[str, list[tuple[str, str | None]]] = {}  # dataset id -> (ingestion, user)
        self._lock = threading.Lock()
        # (workspace id, dataset id, user id, ingestion ids): curate after ingestions' link work
        self.curator: Callable[[str, str, str | None, list[str]], None] | None = None

    def _connect(self) -> Any:
        return L.connect(self.memory_mb, self.threads)

    # -- access ------------------------------------------------------------------------------
    def _readable(self, conn: sa.Connection, principal: Principal, dataset_id: str,
                  cache: dict[str, Any] | None = None) -> tuple[str, Any] | None:
        """(namespace name, dataset row) when the principal can read the dataset, else None."""
        if cache is not None and dataset_id in cache:
            return cache[dataset_id]  # type: ignore[no-any-return]
        found = None
        row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id,
                                                     datasets.c.workspace_id == principal.workspace_id)).first()
        if row is not None:
            ns_name = conn.execute(sa.select(namespaces.c.name).where(namespaces.c.id == row.namespace_id)).scalar()
            try:
                ns = self.namespaces.access(conn, principal, ns_name)
            except NotFound:
                ns = None
            if ns is not None and at_least(ns.level(principal, row.id), "read"):
                found = (ns_name, row)
        if cache is not None:
            cache[dataset_id] = found
        return found

    def _link(self, conn: sa.Connection, principal: Principal, link_id: str,
              cache: dict[str, Any] | None = None) -> tuple[Any, tuple[str, Any], tuple[str, Any]]:
        row = conn.execute(sa.select(links).where(links.c.id == link_id,
                                                  links.c.workspace_id == principal.workspace_id)).first()
        if row is not None:
            a = self._readable(conn, principal, row.from_dataset_id, cache)
            b = self._readable(conn, principal, row.to_dataset_id, cache)
            if a is not None and b is not None:
                return row, a, b
        raise NotFound(f"link {link_id} not found", code="link_not_found", details={"link_id": link_id})

    def _end(self, conn: sa.Connection, principal: Principal, end: dict[str, Any], where: str,
             match_type: str) -> tuple[str, Any, list[str], list[str]]:
        ns, name = end.get("namespace"), end.get("dataset")
        _, row = self.datasets.resolve(conn, principal, ns, name, "read")
        names = [end["column"]] + ([end["lon_column"]] if end.get("lon_column") else [])
        types = {c.name: c.type for c in self.datasets.manifest(row).columns}
        for n in names:
            if n not in types:
                raise ValidationFailed(f"dataset {ns}/{name} has no column {n!r}", code="link_column_not_found",
                                       details={"field": where, "column": n})
        if match_type == "ExactMatch" and len(names) != 1:
            raise ValidationFailed("lon_column is only for GeoMatch", code="invalid_link_options",
                                   details={"field": f"{where}.lon_column"})
        return ns, row, names, [types[n] for n in names]

    # -- views -------------------------------------------------------------------------------
    @staticmethod
    def _end_view(ns: str, row: Any, columns: list[str]) -> dict[str, Any]:
        return {"namespace": ns, "dataset": row.name, "column": columns[0],
                "lon_column": columns[1] if len(columns) > 1 else None}

    def _view(self, row: Any, a: tuple[str, Any], b: tuple[str, Any]) -> dict[str, Any]:
        return {"id": row.id, "object": "link", "status": row.status, "match_type": row.match_type,
                "options": row.options or {}, "from": self._end_view(a[0], a[1], row.from_columns),
                "to": self._end_view(b[0], b[1], row.to_columns), "score": row.score,
                "evidence": row.evidence or {}, "pair_count": row.pair_count,
                "stale": row.pair_count is not None and (row.from_version != a[1].manifest_version
                                                          or row.to_version != b[1].manifest_version),
                "created_at": rfc3339(row.created_at), "computed_at": rfc3339(row.computed_at)}

    @staticmethod
    def signature(match_type: str, a_id: str, a_cols: list[str], b_id: str, b_cols: list[str]) -> str:
        ends = sorted([f"{a_id}:{','.join(a_cols)}", f"{b_id}:{','.join(b_cols)}"])
        return f"{match_type}|{ends[0]}|{ends[1]}"[:300]

    # -- computing ---------------------------------------------------------------------------
    def _side(self, con: Any, row: Any, names: list[str], types: list[str]) -> L.Side:
        snap = self.datasets.snapshot_of(row, "")
        table = L.read_columns(con, snap.paths, snap.manifest.columns, names)
        return L.Side.from_table(table, names, types)

    def _compute(self, match_type: str, options: Any, a_row: Any, a_cols: list[str], b_row: Any,
                 b_cols: list[str]) -> L.MatchResult:
        types_a = [c.type for n in a_cols for c in self.datasets.manifest(a_row).columns if c.name == n]
        types_b = [c.type for n in b_cols for c in self.datasets.manifest(b_row).columns if c.name == n]
        con = self._connect()
        try:
            left = self._side(con, a_row, a_cols, types_a)
            right = self._side(con, b_row, b_cols, types_b)
            return L.match(match_type, left, right, options, max_pairs=self.max_pairs, con=con)
        finally:
            con.close()

    def _store_pairs(self, link_id: str, result: L.MatchResult) -> str:
        key = f"links/{link_id}/pairs-{new_id('job')}.parquet"
        target = self.blobs.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False) as fh:
            tmp = Path(fh.name)
        pq.write_table(result.pairs, tmp, row_group_size=100_000)
        self.blobs.put_file(key, tmp, move=True)
        return key

    def _recompute(self, row: Any, a_row: Any, b_row: Any) -> None:
        """Compute a link's pairs over the current snapshots and publish them."""
        options = L.parse_options(row.match_type, row.options)
        result = self._compute(row.match_type, options, a_row, row.from_columns, b_row, row.to_columns)
        key = self._store_pairs(row.id, result)
        evidence = {**(row.evidence or {}), **result.evidence}
        with self.db.write() as conn:
            old = conn.execute(sa.select(links.c.pairs_key).where(links.c.id == row.id)).scalar()
            done = conn.execute(links.update().where(links.c.id == row.id).values(
                pair_count=result.pairs.num_rows, pairs_key=key, evidence=evidence,
                from_version=a_row.manifest_version, to_version=b_row.manifest_version,
                computed_at=self.clock(), updated_at=self.clock())).rowcount
        if old and old != key:  # a reader may be paging it: it goes once no read can be
            self.datasets._retire([old])
        if not done:  # deleted meanwhile
            self.blobs.path(key).unlink(missing_ok=True)

    # -- operations --------------------------------------------------------------------------
    def list(self, principal: Principal, namespace: str, dataset: str | None = None,
             status: str | None = None) -> dict[str, Any]:
        with self.db.read() as conn:
            ns = self.namespaces.access(conn, principal, namespace)
            if dataset is not None:
                _, ds = self.datasets.resolve(conn, principal, namespace, dataset, "read")
                ids = [ds.id]
            else:
                ids = list(conn.execute(sa.select(datasets.c.id).where(datasets.c.namespace_id == ns.row.id))
                           .scalars())
            query = sa.select(links).where(links.c.workspace_id == principal.workspace_id, sa.or_(
                links.c.from_dataset_id.in_(ids), links.c.to_dataset_id.in_(ids)))
            if status:
                query = query.where(links.c.status == status)
            rows = conn.execute(query.order_by(links.c.status, links.c.score.desc(), links.c.id)).all()
            cache: dict[str, Any] = {}
            out = []
            for row in rows:
                a = self._readable(conn, principal, row.from_dataset_id, cache)
                b = self._readable(conn, principal, row.to_dataset_id, cache)
                if a is not None and b is not None:
                    out.append(self._view(row, a, b))
        return {"object": "list", "items": out, "next_cursor": None}

    def _spec(self, conn: sa.Connection, principal: Principal, spec: dict[str, Any]) -> dict[str, Any]:
        match_type = spec.get("match_type") or "ExactMatch"
        try:
            options = L.parse_options(match_type, spec.get("options"))
        except L.LinkOptionsError as exc:
            raise ValidationFailed(str(exc), code="invalid_link_options",
                                   details={"field": f"options.{exc.field}" if exc.field else "options"}) from None
        a_ns, a_row, a_cols, a_types = self._end(conn, principal, spec["from"], "from", match_type)
        b_ns, b_row, b_cols, b_types = self._end(conn, principal, spec["to"], "to", match_type)
        if a_row.id == b_row.id and a_cols == b_cols:
            raise ValidationFailed("a link joins two different columns", code="invalid_link_options",
                                   details={"field": "to"})
        try:
            L.check_types(match_type, a_types, b_types)
        except L.IncompatibleTypes as exc:
            raise ValidationFailed(str(exc), code="incompatible_link_types",
                                   details={"from_type": exc.left, "to_type": exc.right}) from None
        return {"match_type": match_type, "options": options, "a": (a_ns, a_row, a_cols),
                "b": (b_ns, b_row, b_cols)}

    def create(self, principal: Principal, spec: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """A manual (active) link; (view, created). The same link existing: (it, False); a
        suggested one between the same columns becomes active."""
        CHANGE_LINKS.check(principal)
        with self.db.read() as conn:
            s = self._spec(conn, principal, spec)
        (_, a_row, a_cols), (_, b_row, b_cols) = s["a"], s["b"]
        signature = self.signature(s["match_type"], a_row.id, a_cols, b_row.id, b_cols)
        now = self.clock()
        for attempt in (1, 2):  # the same link saved meanwhile (a suggestion, another writer): take it then
            try:
                with self.db.write() as conn:
                    existing = conn.execute(sa.select(links).where(links.c.workspace_id == principal.workspace_id,
                                                                   links.c.signature == signature)).first()
                    if existing is not None and existing.status == "active":
                        return self._view(existing, *self._ends(conn, principal, existing)), False
                    if existing is not None:  # a suggestion, accepted
                        link_id = existing.id
                        conn.execute(links.update().where(links.c.id == link_id).values(
                            status="active", options=s["options"].to_dict(), from_dataset_id=a_row.id, from_columns=a_cols,
                            to_dataset_id=b_row.id, to_columns=b_cols, created_by=principal.user_id, updated_at=now))
                    else:
                        link_id = new_id("lnk")
                        conn.execute(links.insert().values(
                            id=link_id, workspace_id=principal.workspace_id, signature=signature, status="active",
                            match_type=s["match_type"], options=s["options"].to_dict(), from_dataset_id=a_row.id,
                            from_columns=a_cols, to_dataset_id=b_row.id, to_columns=b_cols, score=None, evidence={},
                            created_by=principal.user_id, created_at=now, updated_at=now))
                    row = conn.execute(sa.select(links).where(links.c.id == link_id)).one()
                break
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
        self._recompute(row, a_row, b_row)
        return self.get(principal, link_id), True

    def _ends(self, conn: sa.Connection, principal: Principal, row: Any) -> tuple[tuple[str, Any], tuple[str, Any]]:
        _, a, b = self._link(conn, principal, row.id)
        return a, b

    def get(self, principal: Principal, link_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row, a, b = self._link(conn, principal, link_id)
            return self._view(row, a, b)

    def delete(self, principal: Principal, link_id: str) -> None:
        CHANGE_LINKS.check(principal)
        with self.db.write() as conn:
            row, _, _ = self._link(conn, principal, link_id)
            conn.execute(links.delete().where(links.c.id == link_id))
        if row.pairs_key:
            self.datasets._retire([row.pairs_key])

    def pairs(self, principal: Principal, link_id: str, *, cursor: str | None = None,
              limit: int = 100) -> dict[str, Any]:
        limit = max(1, min(int(limit), MAX_PAGE))
        try:
            offset = int(cursor) if cursor else 0
            if offset < 0:
                raise ValueError
        except ValueError:
            raise ValidationFailed("cursor is malformed", code="invalid_cursor") from None
        with self.db.read() as conn:
            row, a, b = self._link(conn, principal, link_id)
        items: list[dict[str, Any]] = []
        if row.pairs_key and self.blobs.exists(row.pairs_key):
            con = self._connect()
            try:
                path = str(self.blobs.path(row.pairs_key)).replace("'", "''")
                got = con.execute(f"SELECT left_id, right_id FROM read_parquet('{path}') "
                                  f"LIMIT {limit + 1} OFFSET {offset}").fetchall()
            finally:
                con.close()
            items = [{"from_id": int(x), "to_id": int(y)} for x, y in got[:limit]]
            more = len(got) > limit
        else:
            more = False
        return {"object": "list", "items": items, "next_cursor": str(offset + limit) if more else None,
                "total": row.pair_count, "link_id": row.id,
                "from": self._end_view(a[0], a[1], row.from_columns), "to": self._end_view(b[0], b[1], row.to_columns)}

    def linked(self, principal: Principal, namespace: str, dataset: str, row_id: int,
               limit: int = MAX_LINKED) -> dict[str, Any]:
        """The rows of other datasets that active links match with row ``row_id``."""
        limit = max(1, min(int(limit), MAX_LINKED))
        with self.db.read() as conn:
            _, ds = self.datasets.resolve(conn, principal, namespace, dataset, "read")
            rows = conn.execute(sa.select(links).where(
                links.c.workspace_id == principal.workspace_id, links.c.status == "active",
                sa.or_(links.c.from_dataset_id == ds.id, links.c.to_dataset_id == ds.id))
                .order_by(links.c.id)).all()
            cache: dict[str, Any] = {}
            visible = []
            for row in rows:
                a = self._readable(conn, principal, row.from_dataset_id, cache)
                b = self._readable(conn, principal, row.to_dataset_id, cache)
                if a is not None and b is not None:
                    visible.append((row, a, b))
        snap = self.datasets.snapshot_of(ds, namespace)
        con = self._connect()
        try:
            src = read_parts_sql(snap.paths, snap.manifest.columns, True)
            if not con.execute(f"SELECT count(*) FROM ({src}) WHERE {quote_ident(ROW_ID)} = {int(row_id)}"
                               ).fetchall()[0][0]:  # type: ignore[index]
                raise NotFound(f"row {row_id} of {namespace}/{dataset} not found", code="row_not_found",
                               details={"row_id": row_id})
            out: list[dict[str, Any]] = []
            for row, a, b in visible:
                if not row.pairs_key or not self.blobs.exists(row.pairs_key):
                    continue
                path = str(self.blobs.path(row.pairs_key)).replace("'", "''")
                sides = []
                if row.from_dataset_id == ds.id:
                    sides.append(("left_id", "right_id", b))
                if row.to_dataset_id == ds.id:
                    sides.append(("right_id", "left_id", a))
                for mine, other, (o_ns, o_row) in sides:
                    ids = [r[0] for r in con.execute(
                        f"SELECT {other} FROM read_parquet('{path}') WHERE {mine} = {int(row_id)} "
                        f"ORDER BY {other} LIMIT {limit}").fetchall()]
                    if not ids:
                        continue
                    o_snap = self.datasets.snapshot_of(o_row, o_ns)
                    o_src_ids = read_parts_sql(o_snap.paths, o_snap.manifest.columns, True)
                    cols = ", ".join([quote_ident(ROW_ID)] + [quote_ident(c.name) for c in o_snap.manifest.columns])
                    found = con.execute(f"SELECT {cols} FROM ({o_src_ids}) WHERE {quote_ident(ROW_ID)} IN "
                                        f"({', '.join(str(int(i)) for i in ids)}) ORDER BY {quote_ident(ROW_ID)}"
                                        ).to_arrow_table().to_pylist()
                    for record in found:
                        out.append({"link_id": row.id, "match_type": row.match_type, "namespace": o_ns,
                                    "dataset": o_row.name, "row": _jsonable(record)})
        finally:
            con.close()
        return {"object": "list", "items": out[:limit * max(1, len(visible))], "next_cursor": None}

    def preview(self, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """What a recalculation would produce, nothing saved: for one link spec, its pairs and
        evidence; for a namespace (or one of its datasets), the suggestions scored afresh and
        the active links' pair counts."""
        if body.get("from") or body.get("to"):
            if not (body.get("from") and body.get("to")):
                raise ValidationFailed("a link preview needs both from and to", code="invalid_link_options",
                                       details={"field": "to" if body.get("from") else "from"})
            with self.db.read() as conn:
                s = self._spec(conn, principal, body)
            (a_ns, a_row, a_cols), (b_ns, b_row, b_cols) = s["a"], s["b"]
            result = self._compute(s["match_type"], s["options"], a_row, a_cols, b_row, b_cols)
            sample = result.pairs.slice(0, 20).to_pylist()
            return {"object": "link_preview", "links": [{
                "match_type": s["match_type"], "options": s["options"].to_dict(),
                "from": self._end_view(a_ns, a_row, a_cols), "to": self._end_view(b_ns, b_row, b_cols),
                "pair_count": result.pairs.num_rows, "evidence": result.evidence,
                "sample_pairs": [{"from_id": p["left_id"], "to_id": p["right_id"]} for p in sample]}],
                "suggestions": []}
        namespace = body.get("namespace")
        if not namespace:
            raise ValidationFailed("give namespace (and dataset), or a link's from and to",
                                   code="invalid_link_options", details={"field": "namespace"})
        current = self.list(principal, namespace, body.get("dataset"))["items"]
        active = []
        with self.db.read() as conn:
            for view in current:
                if view["status"] != "active":
                    continue
                row, a, b = self._link(conn, principal, view["id"])
                active.append((view, row, a, b))
        links_out = []
        for view, row, a, b in active:
            result = self._compute(row.match_type, L.parse_options(row.match_type, row.options), a[1],
                                   row.from_columns, b[1], row.to_columns)
            links_out.append({**{k: view[k] for k in ("id", "match_type", "options", "from", "to")},
                              "pair_count": result.pairs.num_rows, "evidence": result.evidence,
                              "sample_pairs": [{"from_id": p["left_id"], "to_id": p["right_id"]}
                                               for p in result.pairs.slice(0, 20).to_pylist()]})
        with self.db.read() as conn:
            targets = self._scope(conn, principal, namespace, body.get("dataset"))
        suggestions = []
        for ds_row in targets:
            for cand in self._candidates(principal, ds_row, save=False):
                suggestions.append(cand)
        return {"object": "link_preview", "links": links_out, "suggestions": suggestions}

    def _scope(self, conn: sa.Connection, principal: Principal, namespace: str, dataset: str | None) -> list[Any]:
        if dataset is not None:
            return [self.datasets.resolve(conn, principal, namespace, dataset, "read")[1]]
        ns = self.namespaces.access(conn, principal, namespace)
        rows = conn.execute(sa.select(datasets).where(datasets.c.namespace_id == ns.row.id)
                            .order_by(datasets.c.updated_at.desc()).limit(self.max_datasets)).all()
        return [r for r in rows if at_least(ns.level(principal, r.id), "read")]

    def recalculate(self, principal: Principal, namespace: str, dataset: str | None = None,
                    link_id: str | None = None) -> dict[str, Any]:
        """Recompute the pairs of the active links of a namespace (or dataset, or one link)
        and the suggestions of its datasets."""
        CHANGE_LINKS.check(principal)
        self.prune(principal.workspace_id)
        with self.db.read() as conn:
            if link_id:
                row, a, b = self._link(conn, principal, link_id)
                todo = [(row, a, b)]
                targets: list[Any] = []
            else:
                views = self.list(principal, namespace, dataset, status="active")["items"]
                todo = [self._link(conn, principal, v["id"]) for v in views]
                targets = self._scope(conn, principal, namespace, dataset)
        for row, a, b in todo:
            self._recompute(row, a[1], b[1])
        suggested = 0
        for ds_row in targets:
            suggested += len(self._candidates(principal, ds_row, save=True))
        with self.db.read() as conn:
            recalculated = [self._view(*self._link(conn, principal, row.id)) for row, _, _ in todo]
        return {"object": "link_recalculation", "recalculated": recalculated, "suggested": suggested}

    # -- sketches and suggestions ------------------------------------------------------------
    def _sketches(self, ds_row: Any, *, save: bool) -> dict[str, tuple[str, dict[str, Any]]]:
        """{column: (type, sketch)} of a dataset's current snapshot (computed if missing or old)."""
        manifest: Manifest = self.datasets.manifest(ds_row)
        wanted = [c for c in manifest.columns if L.family(c.type)]
        if not wanted:
            return {}
        with self.db.read() as conn:
            have = {r.column_name: r for r in conn.execute(sa.select(column_sketches).where(
                column_sketches.c.dataset_id == ds_row.id)).all()}
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        missing: list[Column] = []
        for c in wanted:
            r = have.get(c.name)
            if (r is not None and r.manifest_version == ds_row.manifest_version and r.column_type == c.type
                    and (r.sketch or {}).get("version") == L.SKETCH_VERSION):
                out[c.name] = (c.type, r.sketch)
            else:
                missing.append(c)
        if missing and ds_row.row_count <= self.max_sketch_rows:
            snap = self.datasets.snapshot_of(ds_row, "")
            con = self._connect()
            try:
                table = L.read_columns(con, snap.paths, manifest.columns, [c.name for c in missing])  # one scan
                fresh = {c.name: (c.type, L.column_sketch(table.column(c.name), con=con)) for c in missing}
                del table
            finally:
                con.close()
            out.update(fresh)
            if save:
                now = self.clock()
                with self.db.write() as conn:
                    conn.execute(column_sketches.delete().where(column_sketches.c.dataset_id == ds_row.id,
                                                                column_sketches.c.column_name.in_(list(fresh))))
                    conn.execute(column_sketches.insert(), [
                        {"dataset_id": ds_row.id, "column_name": n, "workspace_id": ds_row.workspace_id,
                         "column_type": t, "manifest_version": ds_row.manifest_version,
                         "sketch": {k: v for k, v in s.items() if k != "_set"},
                         "computed_at": now} for n, (t, s) in fresh.items()])
        return out

    def _candidates(self, principal: Principal, ds_row: Any, *, save: bool) -> list[dict[str, Any]]:
        """Suggested ExactMatch links between ``ds_row`` and every other dataset the principal
        can read (the most recently written ``max_datasets``); saved as suggestions with ``save``."""
        mine = self._sketches(ds_row, save=save)
        if not mine:
            return []
        with self.db.read() as conn:
            visible: list[NamespaceAccess] = self.namespaces.visible_rows(conn, principal)
            by_ns = {ns.row.id: ns for ns in visible}
            others = conn.execute(sa.select(datasets).where(
                datasets.c.namespace_id.in_(list(by_ns)), datasets.c.id != ds_row.id, datasets.c.row_count > 0)
                .order_by(datasets.c.updated_at.desc()).limit(self.max_datasets)).all()
            mine_ns = conn.execute(sa.select(namespaces.c.name).where(namespaces.c.id == ds_row.namespace_id)).scalar()
        others = [o for o in others if at_least(by_ns[o.namespace_id].level(principal, o.id), "read")]
        found: list[dict[str, Any]] = []
        for other in others:
            theirs = self._sketches(other, save=save)
            for a_name, (a_type, a_sk) in mine.items():
                for b_name, (b_type, b_sk) in theirs.items():
                    if L.family(a_type) != L.family(b_type):
                        continue
                    scored = L.score_candidate(a_sk, b_sk, SUGGEST_OPTIONS)
                    if scored is None or scored["score"] < MIN_SCORE:
                        continue
                    found.append({"match_type": "ExactMatch", "options": SUGGEST_OPTIONS.to_dict(),
                                  "from": self._end_view(mine_ns, ds_row, [a_name]),
                                  "to": self._end_view(by_ns[other.namespace_id].row.name, other, [b_name]),
                                  "score": scored["score"],
                                  "evidence": {**scored, "from_distinct": a_sk["distinct"],
                                               "to_distinct": b_sk["distinct"]},
                                  "_ids": (ds_row.id, a_name, other.id, b_name)})
        if save:
            self._save_suggestions(ds_row, found)
        for f in found:
            f.pop("_ids", None)
            f["evidence"].pop("score", None)
        return found

    def _save_suggestions(self, ds_row: Any, found: list[dict[str, Any]]) -> None:
        for attempt in (1, 2):  # a link between the same columns saved meanwhile: read it, go again
            try:
                self._save_suggestions_once(ds_row, found)
                return
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise

    def _save_suggestions_once(self, ds_row: Any, found: list[dict[str, Any]]) -> None:
        now = self.clock()
        keep = set()
        with self.db.write() as conn:
            for f in found:
                a_id, a_col, b_id, b_col = f["_ids"]
                signature = self.signature("ExactMatch", a_id, [a_col], b_id, [b_col])
                keep.add(signature)
                evidence = {k: v for k, v in f["evidence"].items() if k != "score"}
                existing = conn.execute(sa.select(links.c.id, links.c.status, links.c.from_dataset_id,
                                                  links.c.from_columns).where(
                    links.c.workspace_id == ds_row.workspace_id, links.c.signature == signature)).first()
                if existing is not None and (existing.from_dataset_id, list(existing.from_columns or [])) \
                        != (a_id, [a_col]):
                    evidence = reversed_evidence(evidence)  # scored from the other end: said as the link reads
                if existing is None:
                    conn.execute(links.insert().values(
                        id=new_id("lnk"), workspace_id=ds_row.workspace_id, signature=signature, status="suggested",
                        match_type="ExactMatch", options=f["options"], from_dataset_id=a_id, from_columns=[a_col],
                        to_dataset_id=b_id, to_columns=[b_col], score=f["score"], evidence=evidence,
                        created_by=None, created_at=now, updated_at=now))
                else:  # an active link keeps its own evidence but gets the fresh score
                    values: dict[str, Any] = {"score": f["score"], "updated_at": now}
                    if existing.status == "suggested":
                        values["evidence"] = evidence
                    conn.execute(links.update().where(links.c.id == existing.id).values(**values))
            # suggestions of this dataset that no longer qualify go
            stale = conn.execute(sa.select(links.c.id, links.c.signature).where(
                links.c.workspace_id == ds_row.workspace_id, links.c.status == "suggested",
                sa.or_(links.c.from_dataset_id == ds_row.id, links.c.to_dataset_id == ds_row.id))).all()
            gone = [r.id for r in stale if r.signature not in keep]
            if gone:
                conn.execute(links.delete().where(links.c.id.in_(gone)))

    def prune(self, workspace_id: str) -> int:
        """Remove the links and sketches of datasets that no longer exist (their pairs blobs
        retired). Returns the links removed."""
        live = sa.select(datasets.c.id)
        with self.db.write() as conn:
            gone = conn.execute(sa.select(links.c.id, links.c.pairs_key).where(
                links.c.workspace_id == workspace_id,
                sa.or_(links.c.from_dataset_id.not_in(live), links.c.to_dataset_id.not_in(live)))).all()
            if gone:
                conn.execute(links.delete().where(links.c.id.in_([g.id for g in gone])))
            conn.execute(column_sketches.delete().where(column_sketches.c.workspace_id == workspace_id,
                                                        column_sketches.c.dataset_id.not_in(live)))
        keys = [g.pairs_key for g in gone if g.pairs_key]
        if keys:
            self.datasets._retire(keys)
        return len(gone)

    # -- after an ingestion ------------------------------------------------------------------
    def after_ingestion(self, workspace_id: str, dataset_id: str, user_id: str | None,
                        curate_ingestion: str | None = None) -> None:
        """Queue the link work after a committed ingestion (one background thread; a dataset
        queued twice is done once). ``curate_ingestion``: the ingestion asked for ``curate``:
        once the suggestions are computed, ``curator`` runs for it (services.ontology)."""
        with self._lock:
            if curate_ingestion is not None:
                self._curations.setdefault(dataset_id, []).append((curate_ingestion, user_id))
            if dataset_id in self._queued:
                return
            self._queued.add(dataset_id)
        self._pool.submit(self._after_ingestion, workspace_id, dataset_id, user_id)

    def _after_ingestion(self, workspace_id: str, dataset_id: str, user_id: str | None) -> None:
        with self._lock:
            self._queued.discard(dataset_id)
            curations = self._curations.pop(dataset_id, [])
        try:
            self.refresh_dataset(workspace_id, dataset_id, user_id)
        except Exception:
            log.exception("links after the ingestion into %s failed", dataset_id)
        by_user: dict[str | None, list[str]] = {}  # ingestions queued together: one curation per user
        for ingestion_id, curating_user in curations:
            by_user.setdefault(curating_user, []).append(ingestion_id)
        for curating_user, ingestion_ids in by_user.items():
            try:
                if self.curator is not None:
                    self.curator(workspace_id, dataset_id, curating_user, ingestion_ids)
            except Exception:
                log.exception("curating after the ingestions %s failed", ingestion_ids)

    def refresh_dataset(self, workspace_id: str, dataset_id: str, user_id: str | None) -> int:
        """Sketch the dataset's new snapshot, score suggestions against what the ingesting user
        can see, and recompute the pairs of its active links. Returns the suggestions made."""
        with self.db.read() as conn:
            ds_row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).first()
            user = conn.execute(sa.select(users.c.role).where(users.c.id == user_id)).first() if user_id else None
            if ds_row is None or user is None:
                return 0
            active = conn.execute(sa.select(links).where(
                links.c.workspace_id == workspace_id, links.c.status == "active",
                sa.or_(links.c.from_dataset_id == dataset_id, links.c.to_dataset_id == dataset_id))).all()
            ends = {}
            for row in active:
                a = conn.execute(sa.select(datasets).where(datasets.c.id == row.from_dataset_id)).first()
                b = conn.execute(sa.select(datasets).where(datasets.c.id == row.to_dataset_id)).first()
                if a is not None and b is not None:
                    ends[row.id] = (row, a, b)
        principal = Principal(token_id="", workspace_id=workspace_id, role=user.role, user_id=user_id)
        self.prune(workspace_id)
        made = len(self._candidates(principal, ds_row, save=True))
        for row, a, b in ends.values():
            try:
                self._recompute(row, a, b)
            except Exception:
                log.exception("recomputing link %s failed", row.id)
        return made

    def drain(self, timeout: float = 60.0) -> None:
        """Wait for the queued work (tests, shutdown)."""
        self._pool.submit(lambda: None).result(timeout)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    import orjson
    return orjson.loads(orjson.dumps(record, default=str))  # type: ignore[no-any-return]


__all__ = ["CHANGE_LINKS", "LinkService"]

"""The namespace ontology (issue 17): the active links touching a namespace, seen as a graph
(datasets as nodes, links as edges), changed by hand (``update``) or by a deterministic
curator (``curate``) over the suggestions. Built over ``LinkService``: no tables of its own.

A link is in a namespace's ontology when it is active and at least one of its ends is a
dataset of the namespace; a key sees it only when it can read both ends (the links rule).

``update`` removes a link from the ontology by turning it back into a suggestion when the
link has a score (it was, or would be, suggested: its evidence is the suggestion's), and by
deleting it when it has none (a manual link runyard would never suggest, e.g. GeoMatch).

``curate`` decides about every ExactMatch link touching the namespace (or one dataset), the
highest score first:

1. an active link is kept (``keep``) and claims its two column-into-dataset directions;
2. a link between a column that looks like its own dataset's id (``id``, ``<dataset>_id``,
   unique by its sketch) and another such column, or a ``<x>_id`` column that names another dataset than
   the id's, is rejected (the values coincide; they do not name the same things);
3. a link whose ``from`` column already has a kept or selected link into the ``to`` dataset
   (or the other way round) is rejected: one link per column pair direction, the best one;
4. a score at least ``SELECT_SCORE`` is selected (``select``); below it (the borderline
   ones, ``MIN_SCORE``..``SELECT_SCORE``) the decision is ``review``: left as suggestions.

When a language-model provider is configured (the one named by ``provider``, else the
workspace default, else the environment's), the borderline ``review`` decisions of step 4 go
to the model in one JSON-mode call (prompt ``curate_links``): each comes back ``select`` or
``reject`` with the model's reason and ``reviewed_by: "model"`` (a select still yields to a
claimed direction). Without a provider, or when the call fails (``model_review.error``), the
decisions stay the rules' (``reviewed_by: "rules"``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.links import CHANGE_LINKS, LinkService
from runyard.services.llm import LLMService, ModelCallFailed
from runyard.store.tables_links import column_sketches, links

SELECT_SCORE = 0.8  # a suggestion at least this is selected by the curator
UNIQUE_RATIO = 0.95  # a column whose distinct values are at least this share of its rows is unique
ID_NAMES = {"id", "_id", "pk", "uuid", "key"}


def _singular(name: str) -> str:
    name = name.lower()
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("ses") or name.endswith("xes"):
        return name[:-2]
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _id_prefix(column: str) -> str | None:
    """``customer`` for ``customer_id``/``customerId``/``customer-id``; None if not an id name."""
    m = re.fullmatch(r"(.+?)[_\-\s]?(?:id|ID|Id)", column)
    return m.group(1).lower().rstrip("_- ") if m else None


def _names(prefix: str, dataset: str) -> bool:
    ds = dataset.lower()
    return prefix in (ds, _singular(ds)) or _singular(prefix) == _singular(ds)


def _own_id(column: str, dataset: str, distinct: int | None, rows: int | None) -> bool:
    """The column looks like the id of its own dataset: named so, and unique when known."""
    low = column.lower()
    prefix = _id_prefix(column)
    named = low in ID_NAMES or (prefix is not None and _names(prefix, dataset))
    if not named:
        return False
    if distinct is not None and rows:
        return distinct >= UNIQUE_RATIO * rows
    return True


class OntologyService:
    def __init__(self, links_service: LinkService, llm: LLMService | None = None) -> None:
        self.links = links_service
        self.llm = llm

    # -- reading -----------------------------------------------------------------------------
    def _touching(self, principal: Principal, namespace: str, dataset: str | None = None,
                  status: str | None = None) -> list[dict[str, Any]]:
        return list(self.links.list(principal, namespace, dataset, status)["items"])

    def get(self, principal: Principal, namespace: str) -> dict[str, Any]:
        edges = self._touching(principal, namespace, status="active")
        nodes: dict[tuple[str, str], dict[str, Any]] = {}
        for e in edges:
            for end in (e["from"], e["to"]):
                key = (end["namespace"], end["dataset"])
                node = nodes.setdefault(key, {"namespace": end["namespace"], "dataset": end["dataset"],
                                              "in_namespace": end["namespace"] == namespace, "columns": [],
                                              "link_count": 0})
                node["link_count"] += 1
                if end["column"] not in node["columns"]:
                    node["columns"].append(end["column"])
        by_type: dict[str, int] = {}
        for e in edges:
            by_type[e["match_type"]] = by_type.get(e["match_type"], 0) + 1
        return {"object": "ontology", "namespace": namespace,
                "nodes": sorted(nodes.values(), key=lambda n: (not n["in_namespace"], n["namespace"], n["dataset"])),
                "edges": [{"id": e["id"], "match_type": e["match_type"], "from": e["from"], "to": e["to"],
                           "score": e["score"], "pair_count": e["pair_count"], "stale": e["stale"],
                           "options": e["options"]} for e in edges],
                "match_types": by_type}

    # -- changing ----------------------------------------------------------------------------
    def _visible(self, principal: Principal, namespace: str, link_id: str) -> dict[str, Any]:
        view = self.links.get(principal, link_id)  # 404 link_not_found unless both ends readable
        if namespace not in (view["from"]["namespace"], view["to"]["namespace"]):
            raise ValidationFailed(f"link {link_id} does not touch namespace {namespace}",
                                   code="link_outside_namespace", details={"link_id": link_id})
        return view

    def _activate(self, principal: Principal, view: dict[str, Any]) -> dict[str, Any]:
        spec = {"from": view["from"], "to": view["to"], "match_type": view["match_type"],
                "options": view["options"]}
        got, _ = self.links.create(principal, spec)
        return got

    def _deactivate(self, principal: Principal, view: dict[str, Any]) -> str:
        if view["status"] != "active":
            return "unchanged"
        if view["score"] is None:
            self.links.delete(principal, view["id"])
            return "deleted"
        with self.links.db.write() as conn:
            old = conn.execute(sa.select(links.c.pairs_key).where(links.c.id == view["id"])).scalar()
            conn.execute(links.update().where(links.c.id == view["id"]).values(
                status="suggested", pair_count=None, pairs_key=None, from_version=None, to_version=None,
                computed_at=None, updated_at=self.links.clock()))
        if old:
            self.links.datasets._retire([old])
        return "suggested"

    def update(self, principal: Principal, namespace: str, add: list[Any], remove: list[str]) -> dict[str, Any]:
        CHANGE_LINKS.check(principal)
        with self.links.db.read() as conn:
            self.links.namespaces.access(conn, principal, namespace)
        added, removed = [], []
        for i, item in enumerate(add):
            if isinstance(item, str):
                view = self._visible(principal, namespace, item)
            else:
                spec = dict(item)
                if namespace not in (spec["from"]["namespace"], spec["to"]["namespace"]):
                    raise ValidationFailed(f"add[{i}] does not touch namespace {namespace}",
                                           code="link_outside_namespace", details={"field": f"add.{i}"})
                view = None
            if view is not None and view["status"] == "active":
                added.append({"link": view, "result": "unchanged"})
                continue
            if view is not None:
                got = self._activate(principal, view)
                added.append({"link": got, "result": "activated"})
            else:
                got, created = self.links.create(principal, item)
                added.append({"link": got, "result": "created" if created else "unchanged"})
        for link_id in remove:
            view = self._visible(principal, namespace, link_id)
            removed.append({"id": link_id, "result": self._deactivate(principal, view)})
        return {"added": added, "removed": removed, "ontology": self.get(principal, namespace)}

    # -- curation ----------------------------------------------------------------------------
    def curate(self, principal: Principal, namespace: str, dataset: str | None = None, *, activate: bool = False,
               provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        if activate:
            CHANGE_LINKS.check(principal)
        with self.links.db.read() as conn:
            scope = self.links._scope(conn, principal, namespace, dataset)
            ids: dict[tuple[str, str], str] = {(namespace, ds.name): ds.id for ds in scope}
        views = self._touching(principal, namespace, dataset)
        with self.links.db.read() as conn:  # the other ends (readable: the link is visible)
            for v in views:
                for end in (v["from"], v["to"]):
                    key = (end["namespace"], end["dataset"])
                    if key not in ids:
                        ids[key] = self.links.datasets.resolve(conn, principal, key[0], key[1], "read")[1].id
            by_id = {i: k for k, i in ids.items()}
            # each column's distinct and non-null counts, from its sketch (when sketched)
            counts: dict[tuple[str, str, str], tuple[int, int]] = {}
            for r in conn.execute(sa.select(column_sketches.c.dataset_id, column_sketches.c.column_name,
                                            column_sketches.c.sketch)
                                  .where(column_sketches.c.dataset_id.in_(list(by_id)))).all():
                sk = r.sketch or {}
                if "distinct" in sk and "non_null" in sk:
                    counts[(*by_id[r.dataset_id], r.column_name)] = (int(sk["distinct"]), int(sk["non_null"]))
        views.sort(key=lambda v: (v["status"] != "active", -(v["score"] or 0.0), v["id"]))
        claimed: dict[tuple[str, str, str, str, str], str] = {}

        def directions(v: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
            a, b = v["from"], v["to"]
            return [(a["namespace"], a["dataset"], a["column"], b["namespace"], b["dataset"]),
                    (b["namespace"], b["dataset"], b["column"], a["namespace"], a["dataset"])]

        def label(end: dict[str, Any]) -> str:
            return f"{end['namespace']}/{end['dataset']}.{end['column']}"

        decisions = []
        for v in views:
            decision, reason = self._decide(v, counts, claimed, directions, label)
            if decision in ("keep", "select"):
                for d in directions(v):
                    claimed.setdefault(d, v["id"])
            decisions.append({"link": v, "decision": decision, "reason": reason, "reviewed_by": "rules"})
        review = self._model_review(principal, decisions, claimed, directions, provider, model)
        selected = [d for d in decisions if d["decision"] == "select"]
        if activate:
            for d in selected:
                d["link"] = self._activate(principal, d["link"])
                d["activated"] = True
        return {"object": "ontology_curation", "namespace": namespace, "dataset": dataset,
                "datasets_processed": len(scope), "total_selected": len(selected), "activated": activate,
                "provider": provider, "model": model, "model_review": review, "curated_links": decisions}

    def curate_after_ingestion(self, workspace_id: str, dataset_id: str, user_id: str | None,
                               ingestion_ids: list[str]) -> dict[str, Any]:
        """``curate: true`` on an ingestion: once its link suggestions are computed, curate the
        dataset's namespace with ``activate`` as the ingesting user, and record the outcome on
        the ingestion (``attributes.curation``: ``status`` succeeded | failed, the figures,
        the ids of the links activated, the decisions counted; or the ``error``). Ingestions
        into one dataset whose link work ran as one pass share one curation."""
        from runyard.store.tables_data import datasets, ingestions, namespaces, users
        from runyard.timeutil import rfc3339

        with self.links.db.read() as conn:
            names = conn.execute(sa.select(namespaces.c.name).select_from(
                datasets.join(namespaces, namespaces.c.id == datasets.c.namespace_id)).where(
                datasets.c.id == dataset_id)).first()
            user = conn.execute(sa.select(users.c.role).where(users.c.id == user_id)).first() if user_id else None
        try:
            if names is None:
                raise ValidationFailed("the dataset was deleted", code="dataset_not_found")
            if user is None:
                raise ValidationFailed("the ingesting user no longer exists", code="user_not_found")
            principal = Principal(token_id="", workspace_id=workspace_id, role=user.role, user_id=user_id)
            out = self.curate(principal, names.name, activate=True)
            decisions: dict[str, int] = {}
            for d in out["curated_links"]:
                decisions[d["decision"]] = decisions.get(d["decision"], 0) + 1
            record: dict[str, Any] = {
                "status": "succeeded", "namespace": names.name, "datasets_processed": out["datasets_processed"],
                "total_selected": out["total_selected"],
                "activated": [d["link"]["id"] for d in out["curated_links"] if d.get("activated")],
                "decisions": decisions, "model_review": out["model_review"]}
        except Exception as exc:  # recorded, never raised: the ingestion itself succeeded
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            record = {"status": "failed", "error": message}
        record["curated_at"] = rfc3339(self.links.clock())
        with self.links.db.write() as conn:
            for ingestion_id in ingestion_ids:
                row = conn.execute(sa.select(ingestions.c.attributes).where(ingestions.c.id == ingestion_id)).first()
                if row is not None:
                    conn.execute(ingestions.update().where(ingestions.c.id == ingestion_id).values(
                        attributes={**(row.attributes or {}), "curation": record}))
        return record

    def _model_review(self, principal: Principal, decisions: list[dict[str, Any]], claimed: dict[Any, str],
                      directions: Any, provider: str | None, model: str | None) -> dict[str, Any] | None:
        """The model's decision on the borderline suggestions (None: no provider, or none)."""
        borderline = [d for d in decisions if d["decision"] == "review" and d["link"]["status"] == "suggested"
                      and d["link"]["match_type"] == "ExactMatch" and d["link"]["score"] is not None]
        if self.llm is None or not borderline:
            return None
        chosen = self.llm.resolve(principal, provider, required=provider is not None)
        if chosen is None:
            return None
        from runyard.llm.prompts import render_prompt

        def end(e: dict[str, Any]) -> str:
            return f"{e['namespace']}/{e['dataset']}.{e['column']}"

        items = []
        for d in borderline:
            v, ev = d["link"], d["link"]["evidence"] or {}
            items.append({"id": v["id"], "from": end(v["from"]), "to": end(v["to"]), "score": v["score"],
                          **{k: ev.get(k) for k in ("jaccard", "containment_a", "containment_b", "overlap",
                                                    "from_distinct", "to_distinct")},
                          "samples": [str(x)[:80] for x in (ev.get("samples") or [])[:5]]})
        messages = [{"role": "system", "content": render_prompt("curate_links.system")},
                    {"role": "user", "content": render_prompt("curate_links.user", links=json.dumps(items))}]
        out: dict[str, Any] = {"provider": chosen.name, "model": model or chosen.default_model, "reviewed": 0,
                               "error": None}
        try:
            answer = self.llm.complete_json(principal, "curate_links", messages, provider=chosen, model=model)
        except ModelCallFailed as exc:
            out["error"] = str(exc)
            return out
        got = {}
        for x in (answer.parsed or {}).get("decisions") or []:
            if isinstance(x, dict) and x.get("decision") in ("select", "reject") and isinstance(x.get("id"), str):
                got[x["id"]] = x
        for d in borderline:
            x = got.get(d["link"]["id"])
            if x is None:
                continue
            reason = str(x.get("reason") or "")[:500] or "(no reason given)"
            d["reviewed_by"] = "model"
            out["reviewed"] += 1
            taken = [claimed[k] for k in directions(d["link"]) if k in claimed]
            if x["decision"] == "select" and taken:
                d["decision"], d["reason"] = "reject", (f"the model would select it ({reason}), but a kept or "
                                                        f"selected link ({taken[0]}) has its direction")
            elif x["decision"] == "select":
                d["decision"], d["reason"] = "select", f"model: {reason}"
                for k in directions(d["link"]):
                    claimed.setdefault(k, d["link"]["id"])
            else:
                d["decision"], d["reason"] = "reject", f"model: {reason}"
        return out

    @staticmethod
    def _decide(v: dict[str, Any], counts: dict[tuple[str, str, str], tuple[int, int]], claimed: dict[Any, str],
                directions: Any, label: Any) -> tuple[str, str]:
        if v["status"] == "active":
            return "keep", "already active"
        if v["match_type"] != "ExactMatch" or v["score"] is None:
            return "review", "not an ExactMatch suggestion with a score: left for a person"
        a, b = v["from"], v["to"]
        ev = v["evidence"] or {}
        ids = []
        for end in (a, b):
            distinct, non_null = counts.get((end["namespace"], end["dataset"], end["column"]), (None, None))
            ids.append(_own_id(end["column"], end["dataset"], distinct, non_null))
        if ids[0] and ids[1]:
            return "reject", (f"{label(a)} and {label(b)} each look like the id of their own dataset: "
                              "the values coincide, they do not name the same things")
        for own, end, other in ((ids[0], a, b), (ids[1], b, a)):
            prefix = _id_prefix(other["column"])
            if own and prefix and prefix not in ID_NAMES and not _names(prefix, end["dataset"]):
                return "reject", (f"{label(end)} looks like the id of {end['dataset']} only, and "
                                  f"{label(other)} names {prefix}, not {end['dataset']}")
        for d in directions(v):
            if d in claimed:
                return "reject", (f"{d[0]}/{d[1]}.{d[2]} already has a better link into {d[3]}/{d[4]} "
                                  f"({claimed[d]}): one link per column pair direction")
        if v["score"] >= SELECT_SCORE:
            return "select", f"score {v['score']:.2f} is at least {SELECT_SCORE} (overlap {ev.get('overlap', '?')})"
        return "review", (f"borderline score {v['score']:.2f} (below {SELECT_SCORE}): left as a suggestion; "
                          "the model review of borderline links comes with the language-model layer")


__all__ = ["SELECT_SCORE", "OntologyService"]

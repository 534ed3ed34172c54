"""Feedback on a run: a rating (up/down) or a score in [0, 1], a comment, labels and a
corrected output; one record per run, updated in place, resolved when acted on.

Any key that sees the run reads its feedback; giving, clearing and resolving it needs a
member. A change after resolving reopens it (``resolved`` false again).
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import NotFound, ValidationFailed
from runyard.services.runs import RunService
from runyard.store.db import Database
from runyard.store.tables_evaluation import run_feedback
from runyard.timeutil import rfc3339, utcnow

GIVE_FEEDBACK = Permission("member", "give feedback on runs")
RATINGS = ("up", "down")
MAX_COMMENT = 10_000
MAX_LABELS = 50
MAX_LABEL = 100
FIELDS = frozenset({"rating", "score", "comment", "labels", "corrected_output"})


def feedback_view(row: Any) -> dict[str, Any]:
    return {"object": "feedback", "id": row.id, "run_id": row.run_id, "rating": row.rating, "score": row.score,
            "comment": row.comment, "labels": row.labels or [], "has_corrected_output": row.has_corrected_output,
            "corrected_output": row.corrected_output, "resolved": row.resolved,
            "resolved_at": rfc3339(row.resolved_at), "resolved_by": row.resolved_by, "updated_by": row.updated_by,
            "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}


def check_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The columns a feedback update sets, or 400 naming the bad field."""
    unknown = sorted(set(changes) - FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(unknown)}", details={"fields": unknown})
    if not changes:
        raise ValidationFailed(f"give at least one of {', '.join(sorted(FIELDS))}", details={"field": "rating"})
    values: dict[str, Any] = {}
    if "rating" in changes:
        rating = changes["rating"]
        if rating is not None and rating not in RATINGS:
            raise ValidationFailed("rating must be 'up', 'down' or null", code="invalid_feedback",
                                   details={"field": "rating"})
        values["rating"] = rating
    if "score" in changes:
        score = changes["score"]
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                                  or not math.isfinite(score) or not 0 <= score <= 1):
            raise ValidationFailed("score must be a number from 0 to 1 or null", code="invalid_feedback",
                                   details={"field": "score"})
        values["score"] = None if score is None else float(score)
    if "comment" in changes:
        comment = changes["comment"]
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
            raise ValidationFailed(f"comment must be a string of at most {MAX_COMMENT} characters",
                                   code="invalid_feedback", details={"field": "comment"})
        values["comment"] = comment
    if "labels" in changes:
        labels = changes["labels"] or []
        if not isinstance(labels, list) or len(labels) > MAX_LABELS or not all(
                isinstance(x, str) and 0 < len(x) <= MAX_LABEL for x in labels):
            raise ValidationFailed(f"labels must be at most {MAX_LABELS} strings of 1-{MAX_LABEL} characters",
                                   code="invalid_feedback", details={"field": "labels"})
        values["labels"] = list(dict.fromkeys(labels))
    if "corrected_output" in changes:
        values["corrected_output"] = changes["corrected_output"]
        values["has_corrected_output"] = changes["corrected_output"] is not None
    return values


class FeedbackService:
    def __init__(self, db: Database, runs: RunService) -> None:
        self.db = db
        self.runs = runs

    def _row(self, run_id: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(sa.select(run_feedback).where(run_feedback.c.run_id == run_id)).first()

    def get(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """The run's feedback; 404 ``feedback_not_found`` when none was given."""
        run = self.runs.visible_row(principal, run_id)
        row = self._row(run.id)
        if row is None:
            raise NotFound(f"run {run_id!r} has no feedback", code="feedback_not_found", details={"run_id": run_id})
        return feedback_view(row)

    def update(self, principal: Principal, run_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Set the fields given (others kept); creates the record on first use."""
        GIVE_FEEDBACK.check(principal)
        run = self.runs.visible_row(principal, run_id)
        values = check_changes(changes)
        now = utcnow()
        values.update(updated_at=now, updated_by=principal.user_id, resolved=False, resolved_at=None,
                      resolved_by=None)
        try:
            self._write(run, values, now)
        except sa.exc.IntegrityError:  # another request made the record meanwhile: update it
            self._write(run, values, now)
        return feedback_view(self._row(run.id))

    def _write(self, run: Any, values: dict[str, Any], now: Any) -> None:
        with self.db.write() as conn:
            done = conn.execute(run_feedback.update().where(run_feedback.c.run_id == run.id).values(**values)).rowcount
            if not done:
                conn.execute(run_feedback.insert().values(**{
                    "id": new_id("fbk"), "workspace_id": run.workspace_id, "run_id": run.id, "rating": None,
                    "score": None, "comment": None, "labels": [], "has_corrected_output": False,
                    "corrected_output": None, "created_at": now, **values}))

    def clear(self, principal: Principal, run_id: str) -> None:
        """Remove the run's feedback (nothing to remove is fine)."""
        GIVE_FEEDBACK.check(principal)
        run = self.runs.visible_row(principal, run_id)
        with self.db.write() as conn:
            conn.execute(run_feedback.delete().where(run_feedback.c.run_id == run.id))

    def resolve(self, principal: Principal, run_id: str) -> dict[str, Any]:
        """Mark the run's feedback resolved; 404 ``feedback_not_found`` when none was given."""
        GIVE_FEEDBACK.check(principal)
        run = self.runs.visible_row(principal, run_id)
        with self.db.write() as conn:
            done = conn.execute(run_feedback.update().where(run_feedback.c.run_id == run.id).values(
                resolved=True, resolved_at=utcnow(), resolved_by=principal.user_id)).rowcount
        if not done:
            raise NotFound(f"run {run_id!r} has no feedback to resolve", code="feedback_not_found",
                           details={"run_id": run_id})
        return feedback_view(self._row(run.id))

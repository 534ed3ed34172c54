"""Evaluation: expected outputs, feedback on runs, evaluation batches (issue 19).

An expected set belongs to a (target, example id) pair — the target is the tool or
workflow id a run carries in ``runs.tool_id`` — so every run of that example, in any
version, is compared against the same expectation. Its files are blobs
(``expected/<set id>/<file id>``); a rename moves only the row.
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

expected_sets = sa.Table(
    "expected_sets", metadata,
    id_column(), workspace_column(),
    sa.Column("target_id", sa.String(40), nullable=False),  # a tool's or a workflow's id
    sa.Column("target_name", sa.String(64), nullable=False),
    sa.Column("example_id", sa.String(200), nullable=False),
    sa.Column("has_output", sa.Boolean, nullable=False, default=False),
    sa.Column("output", JSON),
    # {numeric_tolerance, unordered_paths, key_columns: {file: [cols]}}
    sa.Column("options", JSON, nullable=False, default=dict),
    sa.Column("source_run_id", sa.String(40)),  # the run whose output or artifacts were copied last
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "target_id", "example_id"),
)

expected_files = sa.Table(
    "expected_files", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("expected_id", sa.String(40), sa.ForeignKey("expected_sets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("blob_key", sa.String(300), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("expected_id", "filename"),
)

run_feedback = sa.Table(
    "run_feedback", metadata,
    id_column(), workspace_column(),
    sa.Column("run_id", sa.String(40), nullable=False, unique=True),
    sa.Column("rating", sa.String(8)),  # up | down
    sa.Column("score", sa.Float),  # 0..1
    sa.Column("comment", sa.Text),
    sa.Column("labels", JSON, nullable=False, default=list),
    sa.Column("has_corrected_output", sa.Boolean, nullable=False, default=False),
    sa.Column("corrected_output", JSON),
    sa.Column("resolved", sa.Boolean, nullable=False, default=False),
    sa.Column("resolved_at", TS),
    sa.Column("resolved_by", sa.String(40)),
    sa.Column("updated_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

eval_batches = sa.Table(
    "eval_batches", metadata,
    id_column(), workspace_column(),
    sa.Column("target_type", sa.String(10), nullable=False),  # tool | workflow
    sa.Column("target_id", sa.String(40), nullable=False),
    sa.Column("target_name", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64)),  # as asked (None: the latest)
    sa.Column("source", JSON, nullable=False),  # {"kind": "inline"|"dataset"|"set", "name"?}
    sa.Column("example_count", sa.Integer, nullable=False),
    sa.Column("errors", JSON, nullable=False, default=list),  # examples whose run was refused
    sa.Column("cancelled_at", TS),
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
)
sa.Index("ix_eval_batches_ws_target", eval_batches.c.workspace_id, eval_batches.c.target_id, eval_batches.c.id)

"""Cleaning tasks (issue 17): a model proposes one SQL transform of a dataset, a worker runs
it in the sandbox and commits its output as a new dataset.

``status``: pending → proposing (the model call) → running (the sandboxed transform and the
commit) → succeeded | failed. A worker holds a task under a lease (``worker_id``,
``lease_expires_at``); a task whose lease ran out is failed as ``worker_lost`` by the
upkeep sweep, so a crash mid-task leaves a record saying what happened and nothing saved.
``source_dataset_id`` is kept by id (a rename does not move it); the source names are kept
too, for the record once the dataset is gone.
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

cleaning_tasks = sa.Table(
    "cleaning_tasks", metadata,
    id_column(), workspace_column(),
    sa.Column("source_dataset_id", sa.String(40), nullable=False),
    sa.Column("source_namespace", sa.String(64), nullable=False),
    sa.Column("source_dataset", sa.String(64), nullable=False),
    sa.Column("source_snapshot", sa.Integer),  # the snapshot the transform read
    sa.Column("output_namespace", sa.String(64), nullable=False),
    sa.Column("output_dataset", sa.String(64), nullable=False),
    sa.Column("output_dataset_id", sa.String(40)),  # set when committed
    sa.Column("prompts", JSON, nullable=False),  # [str], applied in order by one statement
    sa.Column("sql", sa.Text),  # the model's transform, once proposed and checked
    sa.Column("explanation", sa.Text),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error", JSON),  # {code, message} when failed
    sa.Column("provider", sa.String(64)),  # the provider asked (None: the workspace default)
    sa.Column("model", sa.String(200)),
    sa.Column("usage", JSON, nullable=False),  # the model call's tokens
    sa.Column("input_rows", sa.BigInteger),
    sa.Column("output_rows", sa.BigInteger),
    sa.Column("user_id", sa.String(40)),
    sa.Column("token_id", sa.String(40)),  # the key that asked: the task acts with its grants
    sa.Column("worker_id", sa.String(40)),
    sa.Column("lease_expires_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
)
sa.Index("ix_cleaning_tasks_status", cleaning_tasks.c.status, cleaning_tasks.c.created_at)
sa.Index("ix_cleaning_tasks_source_dataset_id", cleaning_tasks.c.source_dataset_id)

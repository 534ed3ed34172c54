"""Ingest proxy runs (issue 17): the auto-modelling pipeline's own record beside its run row
(``runs.type = 'ingest_proxy'``) and its append-only progress events.

``ingest_proxy_runs`` holds what the driver needs to resume a run after the last phase it
completed (the request, the phases done, the schema, the pending hook, the trace) and the
driver's lease (the run row's own lease columns stay NULL: the tool workers' reaper never
touches these runs). ``ingest_proxy_events`` is the stream ``GET …/stream?start_index=`` reads:
``(run_id, idx)`` is unique, so two writers can never give two events one index."""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, metadata, workspace_column

ingest_proxy_runs = sa.Table(
    "ingest_proxy_runs", metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    workspace_column(),
    sa.Column("user_id", sa.String(40), nullable=False),
    sa.Column("token_id", sa.String(40), nullable=False),  # the key whose grants every phase runs under
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(64)),
    sa.Column("request", JSON, nullable=False),  # the flags and the data's source, as validated
    sa.Column("state", JSON, nullable=False),  # phases done, schema, ingestion, answers
    sa.Column("hook", JSON),  # the hook the run waits on (NULL: none)
    sa.Column("trace", JSON, nullable=False),  # {model_calls, steps}
    sa.Column("phase", sa.String(20)),
    sa.Column("next_index", sa.Integer, nullable=False),
    sa.Column("resumes", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(60)),
    sa.Column("lease_expires_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
sa.Index("ix_ingest_proxy_runs_lease_expires_at", ingest_proxy_runs.c.lease_expires_at)

ingest_proxy_events = sa.Table(
    "ingest_proxy_events", metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(20), nullable=False),  # phase | progress | log | hook | complete | error
    sa.Column("phase", sa.String(20)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", JSON),
    sa.Column("at", TS, nullable=False),
)

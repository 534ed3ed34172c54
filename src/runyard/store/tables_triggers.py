"""Trigger tables: schedules and webhooks (issue 16). Each names its target by
``target_kind`` (``tool`` now; ``workflow`` later) and ``target_name``, and runs as the
user who made it (``user_id``), re-authorised each time it fires."""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

schedules = sa.Table(
    "schedules", metadata,
    id_column(), workspace_column(),
    sa.Column("user_id", sa.String(40), nullable=False),  # runs as this user
    sa.Column("target_kind", sa.String(20), nullable=False),  # tool (workflow later)
    sa.Column("target_name", sa.String(200), nullable=False),
    sa.Column("inputs", JSON, nullable=False, default=dict),
    sa.Column("cron", sa.String(200)),
    sa.Column("timezone", sa.String(64), nullable=False, default="UTC"),
    sa.Column("interval_s", sa.Float),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("overlap", sa.String(20), nullable=False, default="skip"),  # skip | queue | cancel_previous
    sa.Column("max_catch_up", sa.Integer, nullable=False, default=1),
    sa.Column("next_fire_at", TS),  # the tick it waits for (compare-and-set by the scheduler)
    sa.Column("last_fire_at", TS),  # the last tick fired (or when it was created / enabled)
    sa.Column("last_run_id", sa.String(40)),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
sa.Index("ix_schedules_due", schedules.c.enabled, schedules.c.next_fire_at)
sa.Index("ix_schedules_ws_user", schedules.c.workspace_id, schedules.c.user_id, schedules.c.id)

webhooks = sa.Table(
    "webhooks", metadata,
    id_column(), workspace_column(),
    sa.Column("user_id", sa.String(40), nullable=False),
    sa.Column("target_kind", sa.String(20), nullable=False),
    sa.Column("target_name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),  # SHA-256 hex of the URL secret
    # {header, algorithm, format, timestamp_header, tolerance_s, secret: <Fernet token>} or NULL
    sa.Column("signature", JSON),
    # A JSON value whose ${{ }} expressions map the request onto the run's inputs (NULL: the body as is).
    sa.Column("mapping", JSON),
    sa.Column("rate_per_s", sa.Float, nullable=False, default=10.0),
    sa.Column("burst", sa.Integer, nullable=False, default=20),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("last_used_at", TS),
)
sa.Index("ix_webhooks_ws_user", webhooks.c.workspace_id, webhooks.c.user_id, webhooks.c.id)

# Email triggers: mail to one of a trigger's aliases starts a run of its target, as its user.
email_triggers = sa.Table(
    "email_triggers", metadata,
    id_column(), workspace_column(),
    sa.Column("user_id", sa.String(40), nullable=False),  # runs as this user
    sa.Column("target_kind", sa.String(20), nullable=False),
    sa.Column("target_name", sa.String(200), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("allowed_senders", JSON, nullable=False, default=list),  # [] allows everyone
    sa.Column("max_message_bytes", sa.Integer, nullable=False),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)
sa.Index("ix_email_triggers_ws_user", email_triggers.c.workspace_id, email_triggers.c.user_id, email_triggers.c.id)

email_aliases = sa.Table(
    "email_aliases", metadata,
    id_column(),
    sa.Column("trigger_id", sa.String(40), nullable=False),
    sa.Column("address", sa.String(320), nullable=False, unique=True),  # local@domain, lowercase
    sa.Column("created_at", TS, nullable=False),
)
sa.Index("ix_email_aliases_trigger", email_aliases.c.trigger_id, email_aliases.c.id)

# One row per decision about a received message: accepted (with its run) or rejected and why.
email_records = sa.Table(
    "email_records", metadata,
    id_column(), workspace_column(),
    sa.Column("trigger_id", sa.String(40)),  # NULL: no trigger has the recipient
    sa.Column("sender", sa.String(320)),
    sa.Column("recipients", JSON, nullable=False, default=list),
    sa.Column("size", sa.BigInteger, nullable=False, default=0),
    sa.Column("status", sa.String(20), nullable=False),  # accepted | rejected
    sa.Column("reason", sa.String(100)),
    sa.Column("detail", sa.Text),
    sa.Column("subject", sa.Text),
    sa.Column("message_id", sa.String(1000)),
    sa.Column("run_id", sa.String(40)),
    sa.Column("received_at", TS, nullable=False),
)
sa.Index("ix_email_records_trigger", email_records.c.trigger_id, email_records.c.id)
sa.Index("ix_email_records_ws", email_records.c.workspace_id, email_records.c.id)

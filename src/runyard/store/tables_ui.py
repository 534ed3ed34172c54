"""Web UI sessions (issue 20): a signed-in browser, and the sign-in failures that throttle it.

A session acts as one token (the key signed in with, or the key a password sign-in made),
so revoking that key or deleting its user ends the session. Only a hash of the cookie is
stored: a copy of this table signs nobody in.
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import TS, id_column, metadata, workspace_column

ui_sessions = sa.Table(
    "ui_sessions", metadata,
    id_column(), workspace_column(),
    sa.Column("cookie_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_id", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(40)),
    # A password sign-in made its own key: signing out revokes it too.
    sa.Column("owns_token", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),  # the absolute timeout
    sa.Column("ended_at", TS),
    sa.Column("client_ip", sa.String(64)),
    sa.Column("user_agent", sa.String(200)),
)
sa.Index("ix_ui_sessions_token", ui_sessions.c.token_id)

# Failed sign-ins per (client address, account): past a few, that pair waits a doubling while.
ui_sign_in_failures = sa.Table(
    "ui_sign_in_failures", metadata,
    sa.Column("subject_hash", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", TS, nullable=False),
    sa.Column("locked_until", TS),
)

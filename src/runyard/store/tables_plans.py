"""Workspace plans and shared rate-limit windows (issue 18).

``workspace_plans``: the plan the operator set for a workspace (no row: the node's
defaults, unlimited unless configured). ``rate_limit_windows``: one row per counter key
(``req:<workspace>``, ``rows:<workspace>``) and fixed window, whose ``used`` API nodes
raise atomically when they lease a batch of allowance (services/ratelimit.py
``LeaseLimiter``) — the database backend when no Redis is configured.
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import TS, metadata

workspace_plans = sa.Table(
    "workspace_plans", metadata,
    sa.Column("workspace_id", sa.String(40), primary_key=True),
    sa.Column("plan", sa.String(20), nullable=False),  # free | pro | enterprise | custom | unlimited
    sa.Column("requests_per_minute", sa.Integer),  # NULL: unlimited
    sa.Column("rows_per_hour", sa.BigInteger),  # NULL: unlimited
    sa.Column("storage_bytes", sa.BigInteger),  # NULL: the node's RUNYARD_STORAGE_QUOTA_BYTES
    sa.Column("updated_by", sa.String(40)),
    sa.Column("updated_at", TS, nullable=False),
)

rate_limit_windows = sa.Table(
    "rate_limit_windows", metadata,
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("window_start", sa.BigInteger, primary_key=True),  # epoch seconds, a multiple of the window
    sa.Column("used", sa.BigInteger, nullable=False),
)

"""Core tables. Every record carries ``workspace_id`` so tenants need no migration of meaning.

Other feature areas define their tables on the same ``metadata`` in sibling modules
(``tables_*.py``), imported at the bottom so Alembic and ``create_all`` see them all.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def id_column() -> sa.Column:
    return sa.Column("id", sa.String(40), primary_key=True)


def workspace_column() -> sa.Column:
    return sa.Column("workspace_id", sa.String(40), nullable=False)


workspaces = sa.Table(
    "workspaces", metadata,
    id_column(),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("settings", JSON, nullable=False, default=dict),
    sa.Column("created_at", TS, nullable=False),
)

tokens = sa.Table(
    "tokens", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("user_id", sa.String(40)),  # whose key it is (the bootstrap key: user "admin")
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("restrictions", JSON, nullable=False, default=dict),
    sa.Column("expires_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_used_at", TS),
    sa.Column("deleted_at", TS),
)

tools = sa.Table(
    "tools", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("visibility", sa.String(10), nullable=False, default="private"),
    # The user who deployed it: a private tool is theirs and the admins' (services.tools);
    # NULL for tools made before owners were recorded (migration 0020 made those public).
    sa.Column("owner_id", sa.String(40)),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS),
)
# A name is unique among live tools; a deleted tool's name can be reused.
sa.Index("uq_tools_live_name", tools.c.workspace_id, tools.c.name, unique=True,
         sqlite_where=tools.c.deleted_at.is_(None), postgresql_where=tools.c.deleted_at.is_(None))

tool_versions = sa.Table(
    "tool_versions", metadata,
    id_column(), workspace_column(),
    sa.Column("tool_id", sa.String(40), sa.ForeignKey("tools.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("source_kind", sa.String(10), nullable=False),  # code | py | zip
    sa.Column("source_name", sa.String(200), nullable=False),
    sa.Column("code_blob", sa.String(300), nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("module", sa.String(200), nullable=False),
    sa.Column("entrypoint", sa.String(200), nullable=False),
    sa.Column("input_schema", JSON, nullable=False),
    sa.Column("input_schema_inferred", sa.Boolean, nullable=False, default=False),
    sa.Column("output_schema", JSON),
    sa.Column("requirements", JSON, nullable=False, default=list),
    sa.Column("required_secrets", JSON, nullable=False, default=list),
    sa.Column("default_inputs", JSON, nullable=False, default=dict),
    sa.Column("timeout_s", sa.Float, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False, default=0),
    # Successive runs may share a process (module state persists between them).
    sa.Column("reuse_process", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # What ``retries`` covers ("error", "worker_lost", "timeout"); NULL: worker_lost only.
    sa.Column("retry_on", JSON),
    # Delay before attempt n+1: retry_backoff_s * 2**(n-1) (capped), 0 for none.
    sa.Column("retry_backoff_s", sa.Float, nullable=False, default=0.0, server_default=sa.text("0")),
    # False: the tool's runs cannot open any socket (the sandbox's seccomp filter).
    sa.Column("network", sa.Boolean, nullable=False, default=True, server_default=sa.true()),
    # The workspace files (names) the tool's runs may read; NULL: none (store.tables_files).
    sa.Column("files", JSON),
    # The connections its runs may read (context.connection); NULL: none (store.tables_connections).
    sa.Column("connections", JSON),
    # The mcp connections its runs may call (context.mcp) and the tool aliases a deploy
    # requires them to list (services.mcp_client); NULL: none.
    sa.Column("mcp_server_names", JSON),
    sa.Column("expected_tools", JSON),
    # function: ``entrypoint`` is called; script: the module runs with the inputs as its
    # globals and ``output_vars`` (JSON list) name the globals returned (engine.child).
    sa.Column("mode", sa.String(10), nullable=False, default="function", server_default="function"),
    sa.Column("output_vars", JSON),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("tool_id", "version"),
)

runs = sa.Table(
    "runs", metadata,
    id_column(), workspace_column(),
    sa.Column("tool_id", sa.String(40), nullable=False),
    sa.Column("tool_name", sa.String(64), nullable=False),
    sa.Column("tool_version", sa.Integer, nullable=False),
    sa.Column("tool_version_id", sa.String(40), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("inputs", JSON, nullable=False),
    sa.Column("input_files", JSON, nullable=False, default=dict),
    sa.Column("output", JSON),
    sa.Column("error", JSON),
    sa.Column("tags", JSON, nullable=False, default=dict),
    sa.Column("session", sa.String(200)),
    sa.Column("batch_id", sa.String(200)),
    sa.Column("example_id", sa.String(200)),
    # Searchable copies of tags.project, tags.app and tags.source_ref (services.run_search).
    sa.Column("project", sa.String(200)),
    sa.Column("app", sa.String(200)),
    sa.Column("source_ref", sa.String(200)),
    # What the run runs: a tool (a workflow, later kinds of run, once they exist).
    sa.Column("type", sa.String(20), nullable=False, default="tool", server_default="tool"),
    sa.Column("trigger", sa.String(20), nullable=False, default="api"),
    # Who or what started it: the user (api, cli, sdk, rerun), the schedule's or webhook's
    # id, the parent run (a workflow's step); a list filter.
    sa.Column("triggered_by", sa.String(320)),
    sa.Column("parent_run_id", sa.String(40)),
    # A workflow step's run: its step id, and its key among the workflow run's children
    # ("<step>" or "<step>[<item>]"; unique, so a step is never started twice).
    sa.Column("step_id", sa.String(64)),
    sa.Column("step_key", sa.String(100)),
    sa.Column("item_index", sa.Integer),
    # The user the run acts as (a workflow's steps run as the user who started it).
    sa.Column("user_id", sa.String(40)),
    # A workflow step's overrides of its tool's policy: {retry_on, retry_backoff_s, timeout_s}.
    sa.Column("run_policy", JSON),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("token_id", sa.String(40)),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("max_attempts", sa.Integer, nullable=False, default=1),
    sa.Column("worker_id", sa.String(40)),
    sa.Column("lease_expires_at", TS),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("progress", JSON),
    sa.Column("usage", JSON),
    sa.Column("requires_confirmation", sa.Boolean, nullable=False, default=False),
    sa.Column("log_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("log_truncated", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("queued_at", TS),
    sa.Column("not_before", TS),  # a retry waiting out its backoff is not claimed before this
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.UniqueConstraint("workspace_id", "idempotency_key"),
    sa.UniqueConstraint("parent_run_id", "step_key"),
)
sa.Index("ix_runs_claim", runs.c.status, runs.c.queued_at)
sa.Index("ix_runs_ws_tool", runs.c.workspace_id, runs.c.tool_id, runs.c.id)
sa.Index("ix_runs_ws_status", runs.c.workspace_id, runs.c.status, runs.c.id)
sa.Index("ix_runs_ws_triggered_by", runs.c.workspace_id, runs.c.triggered_by, runs.c.id)
sa.Index("ix_runs_parent", runs.c.parent_run_id)
# Equality (or in) on a column within a time range, newest first (GET /runs, POST /runs/search):
# the tag columns are NULL on most runs, so their indexes hold only the runs that have them.
sa.Index("ix_runs_ws_created", runs.c.workspace_id, runs.c.created_at, runs.c.id)
sa.Index("ix_runs_ws_tool_name_created", runs.c.workspace_id, runs.c.tool_name, runs.c.created_at, runs.c.id)
sa.Index("ix_runs_ws_status_created", runs.c.workspace_id, runs.c.status, runs.c.created_at, runs.c.id)
for _tag in ("session", "batch_id", "example_id", "project", "app", "source_ref"):
    sa.Index(f"ix_runs_ws_{_tag}_created", runs.c.workspace_id, runs.c[_tag], runs.c.created_at, runs.c.id,
             sqlite_where=runs.c[_tag].is_not(None), postgresql_where=runs.c[_tag].is_not(None))
# PostgreSQL: ``contains`` (LIKE '%…%') on the searchable text columns through pg_trgm.
# SQLite finds substrings by scanning the narrower indexes above (its GLOB prefix uses them):
# there the index exists, so both databases match this metadata, but is empty (WHERE 0).
SEARCHABLE_TEXT = ("tool_name", "example_id", "session", "project", "source_ref")
for _col in SEARCHABLE_TEXT:
    sa.Index(f"ix_runs_{_col}_trgm", runs.c[_col], postgresql_using="gin", postgresql_ops={_col: "gin_trgm_ops"},
             postgresql_where=None if _col == "tool_name" else runs.c[_col].is_not(None), sqlite_where=sa.false())
sa.Index("ix_runs_worker", runs.c.worker_id, runs.c.status)

run_artifacts = sa.Table(
    "run_artifacts", metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("path", sa.String(1000), primary_key=True),
    workspace_column(),
    sa.Column("blob_key", sa.String(1200), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(200), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)
# The storage quota sums a workspace's artifact sizes (services.storage): read from the index alone.
sa.Index("ix_run_artifacts_ws_size", run_artifacts.c.workspace_id, run_artifacts.c.size)

secrets = sa.Table(
    "secrets", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("display_name", sa.String(200)),
    sa.Column("description", sa.Text),
    sa.Column("category", sa.String(100)),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("masked_value", sa.String(40), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

workers = sa.Table(
    "workers", metadata,
    id_column(),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("heartbeat_at", TS, nullable=False),
    sa.Column("stopped_at", TS),
)

usage_events = sa.Table(
    "usage_events", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    workspace_column(),
    sa.Column("kind", sa.String(40), nullable=False),   # run_seconds, rows_generated, ...
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("ref_id", sa.String(40)),
    sa.Column("user_id", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
)
sa.Index("ix_usage_ws_kind_time", usage_events.c.workspace_id, usage_events.c.kind, usage_events.c.created_at)

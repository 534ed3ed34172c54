"""Settings, from arguments first, then ``RUNYARD_*`` environment variables, then defaults."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("RUNYARD_DATA_DIR", ".runyard")))
    host: str = field(default_factory=lambda: os.environ.get("RUNYARD_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("RUNYARD_PORT", 8000))
    database_url: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_DATABASE_URL"))
    admin_key: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_ADMIN_KEY"))
    secret_key: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_SECRET_KEY"))
    # Worker slots in this process; 0 runs an API-only node (workers elsewhere).
    worker_slots: int = field(default_factory=lambda: _env_int("RUNYARD_WORKER_SLOTS", max(4, (os.cpu_count() or 2) * 4)))
    log_cap_bytes: int = field(default_factory=lambda: _env_int("RUNYARD_LOG_CAP_BYTES", 10 * 1024 * 1024))
    # A run's lease is extended every heartbeat; a worker silent for a lease is lost.
    lease_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_LEASE_S", "15")))
    heartbeat_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_HEARTBEAT_S", "3")))
    uv_offline: bool = field(default_factory=lambda: os.environ.get("RUNYARD_UV_OFFLINE") == "1")
    # Fork servers preloading what tools import (learned from their runs); 0 = none.
    preload_servers: int = field(default_factory=lambda: _env_int("RUNYARD_PRELOAD_SERVERS", 4))
    # Generated synthetic rows per hour of a workspace without a plan; 0 = unlimited (the default).
    synth_rows_per_hour: int = field(default_factory=lambda: _env_int("RUNYARD_SYNTH_ROWS_PER_HOUR", 0))
    # Bytes a workspace stores (workspace files, datasets, run artifacts, open uploads);
    # 0 = unlimited (storage_quota_exceeded past it; services.storage).
    storage_quota_bytes: int = field(default_factory=lambda: _env_int("RUNYARD_STORAGE_QUOTA_BYTES", 0))
    # Query limits: wall time (query_timeout), memory and temp space of the query process.
    query_timeout_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_QUERY_TIMEOUT_S", "30")))
    query_memory_mb: int = field(default_factory=lambda: _env_int("RUNYARD_QUERY_MEMORY_MB", 2048))
    query_temp_mb: int = field(default_factory=lambda: _env_int("RUNYARD_QUERY_TEMP_MB", 4096))
    query_row_cap: int = field(default_factory=lambda: _env_int("RUNYARD_QUERY_ROW_CAP", 10_000))
    # Parsing an uploaded file: memory of the parsing process, and its wall time.
    ingest_memory_mb: int = field(default_factory=lambda: _env_int("RUNYARD_INGEST_MEMORY_MB", 2048))
    # What a compressed upload may expand to (decompression_limit past it: a gzip bomb stops there).
    ingest_max_decompressed_mb: int = field(default_factory=lambda: _env_int("RUNYARD_INGEST_MAX_DECOMPRESSED_MB",
                                                                             20 * 1024))
    ingest_timeout_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_INGEST_TIMEOUT_S", "3600")))
    # Unfinished multipart uploads (and their signed part URLs) expire after this long.
    upload_ttl_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_UPLOAD_TTL_S", "86400")))
    # Result cursors live this long; replaced dataset parts are kept this much longer than it.
    cursor_ttl_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_CURSOR_TTL_S", "1800")))
    # API requests per minute of a workspace without a plan; 0 = unlimited.
    requests_per_minute: int = field(default_factory=lambda: _env_int("RUNYARD_REQUESTS_PER_MINUTE", 0))
    # Where API nodes count requests and generated rows against workspace plans together
    # (docs/limits.md); unset: in the database, by leases of allowance.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_REDIS_URL") or None)
    # The run sandbox: "on" (every protection this host offers; a warning names each
    # missing one), "strict" (refuse to start unless all are there) or "off".
    sandbox: str = field(default_factory=lambda: os.environ.get("RUNYARD_SANDBOX", "on"))
    # Processes and threads a run may have at once.
    sandbox_max_processes: int = field(default_factory=lambda: _env_int("RUNYARD_SANDBOX_MAX_PROCESSES", 256))
    # Ports of this host's own addresses that runs may still reach (DNS resolvers on loopback).
    sandbox_local_ports: list[int] = field(default_factory=lambda: [
        int(p) for p in os.environ.get("RUNYARD_SANDBOX_LOCAL_PORTS", "53").split(",") if p.strip()])
    # "off" leaves runs' connections to this host's own addresses to the operator's firewall.
    sandbox_host_filter: bool = field(default_factory=lambda: os.environ.get("RUNYARD_SANDBOX_HOST_FILTER", "on") != "off")
    # The SMTP listener for email triggers: off unless a port is given (RUNYARD_SMTP_PORT);
    # bound to loopback unless told otherwise; messages over the size limit are refused.
    smtp_port: int = field(default_factory=lambda: _env_int("RUNYARD_SMTP_PORT", 0))
    smtp_host: str = field(default_factory=lambda: os.environ.get("RUNYARD_SMTP_HOST", "127.0.0.1"))
    smtp_max_message_mb: int = field(default_factory=lambda: _env_int("RUNYARD_SMTP_MAX_MESSAGE_MB", 25))
    # Hosts the server itself may call although they resolve to loopback, private, link-local
    # or metadata addresses (services/outbound.py): host names, addresses or CIDRs, comma-separated,
    # from RUNYARD_ALLOWED_HOSTS and RUNYARD_OUTBOUND_ALLOW (its older name; both count).
    outbound_allow: str = field(default_factory=lambda: ",".join(
        os.environ.get(name, "") for name in ("RUNYARD_ALLOWED_HOSTS", "RUNYARD_OUTBOUND_ALLOW")))
    # A default language-model provider from the environment (an OpenAI-compatible endpoint),
    # used when the workspace has no default provider of its own (docs/llm.md).
    llm_base_url: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_LLM_BASE_URL") or None)
    llm_api_key: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_LLM_API_KEY") or None)
    llm_model: str | None = field(default_factory=lambda: os.environ.get("RUNYARD_LLM_MODEL") or None)
    llm_timeout_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_LLM_TIMEOUT_S", "60")))
    # Model calls one pipeline model step makes at a time (services.model_steps).
    model_step_concurrency: int = field(default_factory=lambda: int(os.environ.get(
        "RUNYARD_MODEL_STEP_CONCURRENCY", "4")))
    # Browser origins (scheme://host[:port], comma-separated) allowed to call /mcp besides the
    # server's own: any other Origin is refused, so a web page cannot reach it by DNS rebinding.
    mcp_allowed_origins: list[str] = field(default_factory=lambda: [
        o.strip().rstrip("/") for o in os.environ.get("RUNYARD_MCP_ALLOWED_ORIGINS", "").split(",") if o.strip()])
    # Where DataMaker's REST paths are served (api/compat/datamaker.py): under /compat/, so
    # their bodies are authenticated before they are read (api.guard), as every compat route's.
    datamaker_prefix: str = field(default_factory=lambda: os.environ.get("RUNYARD_DATAMAKER_PREFIX",
                                                                         "/compat/datamaker").rstrip("/"))

    # Web UI sessions (services/ui_sessions.py): end after this long without a request, and
    # this long after sign-in whatever happens.
    ui_session_idle_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_UI_SESSION_IDLE_S", "3600")))
    ui_session_max_s: float = field(default_factory=lambda: float(os.environ.get("RUNYARD_UI_SESSION_MAX_S", "43200")))

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if self.sandbox not in ("on", "strict", "off"):
            raise ValueError(f"RUNYARD_SANDBOX must be on, strict or off, not {self.sandbox!r}")
        if not re.fullmatch(r"/compat(/[A-Za-z0-9._-]+)+", self.datamaker_prefix):
            raise ValueError("RUNYARD_DATAMAKER_PREFIX must be a path under /compat/ (letters, digits, '.', '_', '-'), "
                             f"not {self.datamaker_prefix!r}")
        if self.smtp_port < 0 or self.smtp_max_message_mb < 1:
            raise ValueError("RUNYARD_SMTP_PORT must be 0 (off) or a port, RUNYARD_SMTP_MAX_MESSAGE_MB at least 1")

    @property
    def db_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'runyard.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


def normalise_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url

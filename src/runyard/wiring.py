"""Wiring: one ``Platform`` object holds the database, blob store and services of a node."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from runyard.config import Settings
from runyard.events import EventHub
from runyard.ids import new_id
from runyard.services.cleaning import CleaningService
from runyard.services.connections import ConnectionService
from runyard.services.datasets import DatasetService
from runyard.services.email_triggers import EmailTriggerService
from runyard.services.errors import ValidationFailed
from runyard.services.eval_batches import EvalBatchService
from runyard.services.expected import ExpectedService
from runyard.services.feedback import FeedbackService
from runyard.services.ingest_proxy import IngestProxyService
from runyard.services.ingestions import IngestionService
from runyard.services.links import LinkService
from runyard.services.llm import LLMService, env_provider
from runyard.services.llm_features import ModelFeatures
from runyard.services.mcp_client import McpClientService
from runyard.services.model_steps import ModelSteps
from runyard.services.namespaces import NamespaceService
from runyard.services.outbound import OutboundPolicy
from runyard.services.plans import PlanService
from runyard.services.queries import QueryService
from runyard.services.ratelimit import make_limiter
from runyard.services.run_comparison import RunComparison
from runyard.services.run_execution import RunExecution
from runyard.services.run_file_rows import RunFileRows
from runyard.services.run_live import LiveLinks
from runyard.services.runs import RunService
from runyard.services.sandboxed import SandboxedJobs
from runyard.services.schedules import ScheduleService
from runyard.services.secrets import SecretService, load_cipher
from runyard.services.storage import StorageQuota
from runyard.services.synth_sets import SetService
from runyard.services.templates import TemplateService
from runyard.services.tokens import TokenService, generate_key
from runyard.services.tools import ToolService
from runyard.services.trigger_targets import Targets
from runyard.services.ui_sessions import UiSessionService
from runyard.services.uploads import UploadService
from runyard.services.usage import UsageRecorder, UsageService
from runyard.services.users import UserService
from runyard.services.webhooks import WebhookService
from runyard.services.workers import WorkerRegistry
from runyard.services.workflow_runs import WorkflowRuns
from runyard.services.workflows import WorkflowService
from runyard.services.workspace_files import WorkspaceFileService
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.migrate import upgrade
from runyard.store.tables import workspaces
from runyard.timeutil import utcnow

if TYPE_CHECKING:
    from runyard.engine.executor import Executor, SandboxConfig
    from runyard.services.mcp_stdio import StdioServers
    from runyard.store.notify import PgNotifier

log = logging.getLogger(__name__)
DEFAULT_WORKSPACE = "default"
PERMISSIVE_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": True}


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        upgrade(self.db.engine)
        self.blobs = BlobStore(settings.blob_dir)
        self.hub = EventHub()
        self.cipher = load_cipher(settings.data_dir, settings.secret_key)
        self.users = UserService(self.db)
        self.tokens = TokenService(self.db, self.users)
        self.users.on_change = lambda user_id: self.tokens.forget(lambda p: p.user_id == user_id)
        self.ui_sessions = UiSessionService(self.db, self.tokens, idle=timedelta(seconds=settings.ui_session_idle_s),
                                            absolute=timedelta(seconds=settings.ui_session_max_s))
        self.namespaces = NamespaceService(self.db)
        self.usage_recorder = UsageRecorder(self.db)
        self.usage = UsageService(self.db)
        retention = timedelta(seconds=settings.cursor_ttl_s + settings.query_timeout_s + 60)
        # A workspace's plan may set its own quota (plan_bytes is bound once plans exist, below).
        self.storage_quota = StorageQuota(self.db, settings.storage_quota_bytes)
        self.datasets = DatasetService(self.db, self.blobs, self.namespaces, self.usage_recorder,
                                       storage_quota=self.storage_quota, retention=retention)
        signing_key = load_signing_key(settings.data_dir)
        self.jobs = SandboxedJobs(lambda: self.executor, settings.data_dir / "work")
        self.datasets.jobs = self.jobs  # a row ingestion's pipeline runs in the ingest sandbox
        self.datasets.pipeline_memory_mb = settings.ingest_memory_mb
        self.ingestions = IngestionService(self.db, self.blobs, self.datasets, self.jobs, self.usage_recorder,
                                           memory_mb=settings.ingest_memory_mb, timeout_s=settings.ingest_timeout_s,
                                           max_decompressed_bytes=settings.ingest_max_decompressed_mb << 20,
                                           lease_s=settings.lease_s * 2)
        self.workspace_files = WorkspaceFileService(self.db, self.blobs, self.storage_quota)
        self.uploads = UploadService(self.db, self.blobs, self.datasets, self.ingestions, signing_key,
                                     ttl=timedelta(seconds=settings.upload_ttl_s))
        self.queries = QueryService(self.db, self.datasets, self.jobs, self.usage_recorder, signing_key,
                                    timeout_s=settings.query_timeout_s, memory_mb=settings.query_memory_mb,
                                    temp_mb=settings.query_temp_mb, row_cap=settings.query_row_cap)
        self.links = LinkService(self.db, self.blobs, self.datasets, memory_mb=settings.query_memory_mb,
                                 threads=2)
        self.datasets.on_ingested = self.links.after_ingestion
        self.links.curator = self._curate_after_ingestion  # an ingestion's ``curate: true``
        self.secrets = SecretService(self.db, self.cipher)
        self.outbound = OutboundPolicy.from_setting(settings.outbound_allow)
        self.connections = ConnectionService(self.db, self.secrets, self.outbound)
        self.llm = LLMService(self.db, self.cipher, self.usage_recorder, self.outbound, env_provider=env_provider(
            settings.llm_base_url, settings.llm_api_key, settings.llm_model, settings.llm_timeout_s))
        self.llm_features = ModelFeatures(self.llm, self.datasets, self.queries)
        self.datasets.model_steps = ModelSteps(self.llm, concurrency=settings.model_step_concurrency)
        self.cleaning = CleaningService(self.db, self.datasets, self.llm, self.jobs, self.tokens, self.usage_recorder,
                                        self.queries, memory_mb=settings.ingest_memory_mb,
                                        timeout_s=min(settings.ingest_timeout_s, 3600.0), lease_s=settings.lease_s * 2)
        self.tools = ToolService(self.db, self.blobs, settings.data_dir / "cache" / "code", self._infer_schema)
        self.runs = RunService(self.db, self.blobs, self.tools, self.secrets, self.hub,
                               work_root=settings.data_dir / "work")
        self.workflows = WorkflowService(self.db, self.tools)
        self.workflow_runs = WorkflowRuns(self.db, self.runs, self.workflows, self.users, self.hub)
        self.run_file_rows = RunFileRows(self.runs)  # GET/DELETE /runs/{id}/files
        self.run_execution = RunExecution(self.runs)  # ?expand=execution,debug
        self.live_links = LiveLinks(self.runs, self.tokens, signing_key)  # POST /runs/{id}/connect
        self.ingest_proxy = IngestProxyService(self.db, self.blobs, self.hub, self.runs, self.datasets, self.ingestions,
                                               self.namespaces, self.llm, self.tokens, self.outbound,
                                               workspace_files=self.workspace_files)
        self.mcp_client = McpClientService(self.db, self.connections, self.runs, self.hub, self.outbound)
        self.tools.mcp_aliases = self.mcp_client.aliases
        # verify of a stdio MCP connection starts its command confined (services.mcp_stdio)
        self.connections.stdio_tools = lambda settings: self.stdio_servers().list_tools_once(settings)
        self.targets = Targets(self.tools, self.runs, self.workflows, self.workflow_runs)
        self.schedules = ScheduleService(self.db, self.targets, self.users)
        self.webhooks = WebhookService(self.db, self.targets, self.users, self.cipher)
        self.sets = SetService(self.db, self.blobs)
        # evaluation (issue 19): expected outputs, comparisons, feedback, evaluation batches
        self.expected = ExpectedService(self.db, self.blobs, self.runs, self.storage_quota)
        self.comparison = RunComparison(self.runs, self.expected, self.jobs)
        self.feedback = FeedbackService(self.db, self.runs)
        self.eval_batches = EvalBatchService(self.db, self.runs, self.workflow_runs, self.datasets, self.sets,
                                             self.comparison)
        self.plans = PlanService(self.db, make_limiter(settings.redis_url, self.db),
                                 operator_user_id=lambda: self.admin_user_id,
                                 default_requests_per_minute=settings.requests_per_minute,
                                 default_rows_per_hour=settings.synth_rows_per_hour)
        self.storage_quota.plan_bytes = lambda workspace_id: self.plans.limits(workspace_id).storage_bytes
        self.templates = TemplateService(self.db, self.sets, self.plans)
        self.workers = WorkerRegistry(self.db)
        self.workspace_id = self._ensure_workspace(DEFAULT_WORKSPACE)
        self.admin_user_id = self.users.ensure_admin(self.workspace_id)
        self.email_triggers = EmailTriggerService(
            self.db, self.targets, self.users, default_workspace=self.workspace_id,
            max_message_bytes=settings.smtp_max_message_mb * 1024 * 1024)
        self._executor: Executor | None = None
        self.notifier: PgNotifier | None = None
        if self.db.is_postgres:
            from runyard.store.notify import PgNotifier
            self.notifier = PgNotifier(settings.db_url, self.hub)
            self.notifier.start()

    def _ensure_workspace(self, name: str) -> str:
        with self.db.write() as conn:
            row = conn.execute(sa.select(workspaces.c.id).where(workspaces.c.name == name)).first()
            if row:
                return row.id
            ws_id = new_id("ws")
            conn.execute(workspaces.insert().values(id=ws_id, name=name, settings={}, created_at=utcnow()))
            return ws_id

    def bootstrap_admin_key(self) -> tuple[str, bool]:
        """The admin key: ``RUNYARD_ADMIN_KEY`` if set, else the one in ``<data-dir>/admin-key``,
        created (mode 0600) on first start. Returns (key, newly_created)."""
        configured = self.settings.admin_key
        path = self.settings.data_dir / "admin-key"
        created = False
        if configured:
            key = configured
        elif path.exists():
            key = path.read_text().strip()
        else:
            key = generate_key()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
            created = True
        self.tokens.ensure_bootstrap(self.workspace_id, key, self.admin_user_id)
        return key, created

    @property
    def executor(self) -> Executor:
        """The process executor, started on first use (API-only nodes still infer schemas)."""
        if self._executor is None:
            from runyard.engine.executor import REUSE_LIMIT, Executor
            self._executor = Executor(self.settings.data_dir, uv_offline=self.settings.uv_offline,
                                      reuse_limit=max(REUSE_LIMIT, self.settings.worker_slots),
                                      preload_servers=self.settings.preload_servers,
                                      sandbox=self.sandbox_config())
            self._executor.start()
        return self._executor

    def sandbox_config(self) -> SandboxConfig:
        return sandbox_config(self.settings)

    def stdio_servers(self) -> StdioServers:
        """Stdio MCP servers confined like this node's runs."""
        from runyard.services.mcp_stdio import StdioServers

        config = self.sandbox_config()
        return StdioServers(config.protected, sandbox=config.mode != "off")

    def running_executor(self) -> Executor | None:
        """The executor if this node has started one (it has workers), else None."""
        return self._executor

    def _curate_after_ingestion(self, workspace_id: str, dataset_id: str, user_id: str | None,
                                ingestion_ids: list[str]) -> None:
        from runyard.services.ontology import OntologyService
        OntologyService(self.links, self.llm).curate_after_ingestion(workspace_id, dataset_id, user_id,
                                                                     ingestion_ids)

    def _infer_schema(self, source_dir: Path, module: str, entrypoint: str, requirements: list[str]) -> dict[str, Any]:
        from runyard.engine.introspect import inspect_entrypoint
        config = self.sandbox_config()
        # No network at all: reading a signature needs none, and this child is in no
        # cgroup under the host-services filter (an API-only node has none).
        policy = None if config.mode == "off" else {"protected": config.protected, "network": False}
        try:
            return inspect_entrypoint(source_dir, module, entrypoint, sandbox=policy)
        except Exception as exc:
            if requirements:
                # Its imports may need the tool's own environment, built at first run:
                # accept any object rather than build an environment during deploy.
                log.info("schema inference without the tool's requirements failed: %s", exc)
                return {"input_schema": PERMISSIVE_SCHEMA, "description": None}
            raise ValidationFailed(f"could not load the tool to read its signature: {exc}",
                                   code="invalid_source", details={"field": "code"}) from exc

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
        if self._executor is not None:
            self._executor.close()
        self.runs.commits.close()
        self.db.dispose()


def load_signing_key(data_dir: Path) -> bytes:
    """The key that signs upload part URLs and query cursors: ``<data-dir>/signing-key``
    (32 random bytes, mode 0600), made on first start."""
    path = data_dir / "signing-key"
    if not path.exists():
        # Written whole under a temp name, then linked: a node starting at the same time
        # reads either no file or the whole key, never half of one.
        tmp = data_dir / f".signing-key-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


def sandbox_config(settings: Settings) -> SandboxConfig:
    """How runs (and deploy-time inspections) are confined: see engine/sandbox.py."""
    from runyard.engine.executor import SandboxConfig

    protected = [str(settings.data_dir)]
    if settings.db_url.startswith("sqlite:///"):
        protected.append(str(Path(settings.db_url[len("sqlite:///"):]).parent))
    return SandboxConfig(mode=settings.sandbox, protected=protected,  # type: ignore[arg-type]
                         max_processes=settings.sandbox_max_processes,
                         local_ports=list(settings.sandbox_local_ports),
                         host_filter=settings.sandbox_host_filter)

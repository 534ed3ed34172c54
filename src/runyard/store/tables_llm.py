"""Language-model providers (issue 17): OpenAI-compatible endpoints a workspace's model
features call. The API key is held encrypted (the secrets cipher); ``masked_api_key`` is
the hint shown instead. At most one provider per workspace is its default."""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import TS, id_column, metadata, workspace_column

llm_providers = sa.Table(
    "llm_providers", metadata,
    id_column(), workspace_column(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),  # openai-compatible
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("api_key_encrypted", sa.Text),  # a Fernet token (NULL: no key, e.g. a local Ollama)
    sa.Column("masked_api_key", sa.String(32)),
    sa.Column("default_model", sa.String(200), nullable=False),
    sa.Column("timeout_s", sa.Float, nullable=False),
    sa.Column("max_retries", sa.Integer, nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)
sa.Index("uq_llm_providers_default", llm_providers.c.workspace_id, unique=True,
         sqlite_where=llm_providers.c.is_default.is_(True), postgresql_where=llm_providers.c.is_default.is_(True))

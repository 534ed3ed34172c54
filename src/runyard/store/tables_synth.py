"""Synthetic data tables: templates with immutable versions, saved sets with versions."""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, metadata

synth_templates = sa.Table(
    "synth_templates", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS),
)
# Names are unique among live templates; a deleted template's name can be reused.
sa.Index("uq_synth_templates_live_name", synth_templates.c.workspace_id, synth_templates.c.name, unique=True,
         sqlite_where=synth_templates.c.deleted_at.is_(None),
         postgresql_where=synth_templates.c.deleted_at.is_(None))

synth_template_versions = sa.Table(
    "synth_template_versions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("template_id", sa.String(40), sa.ForeignKey("synth_templates.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("document", JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("template_id", "version"),
)

synth_sets = sa.Table(
    "synth_sets", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("workspace_id", "name"),
)

synth_set_versions = sa.Table(
    "synth_set_versions", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workspace_id", sa.String(40), nullable=False),
    sa.Column("set_id", sa.String(40), sa.ForeignKey("synth_sets.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("columns", JSON, nullable=False),
    sa.Column("blob_key", sa.String(300), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # Where the rows came from when generated (template id, version, seed, count).
    sa.Column("source", JSON),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("set_id", "version"),
)

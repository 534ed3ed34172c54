"""Links between datasets (issue 17): the links themselves (active or suggested) and the
per-column sketches suggestions are scored from.

A link's matched row pairs live in the blob store (one Parquet file per computation,
``pairs_key``); its row holds the ends, the match type and options, the score and evidence.
``signature`` is the link's ends and match type in a canonical order, so one link between
the same columns is kept once per workspace whichever way round it was asked for.
"""

from __future__ import annotations

import sqlalchemy as sa

from runyard.store.tables import JSON, TS, id_column, metadata, workspace_column

links = sa.Table(
    "links", metadata,
    id_column(), workspace_column(),
    sa.Column("signature", sa.String(300), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # active | suggested
    sa.Column("match_type", sa.String(20), nullable=False),  # ExactMatch | GeoMatch
    sa.Column("options", JSON, nullable=False),
    sa.Column("from_dataset_id", sa.String(40), nullable=False),
    sa.Column("from_columns", JSON, nullable=False),  # [column] or [lat, lon]
    sa.Column("to_dataset_id", sa.String(40), nullable=False),
    sa.Column("to_columns", JSON, nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("evidence", JSON, nullable=False),
    sa.Column("pair_count", sa.BigInteger),  # NULL: not computed yet
    sa.Column("pairs_key", sa.String(300)),  # the blob with the matched row pairs
    sa.Column("from_version", sa.Integer),  # the snapshots the pairs were computed from
    sa.Column("to_version", sa.Integer),
    sa.Column("created_by", sa.String(40)),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("computed_at", TS),
    sa.UniqueConstraint("workspace_id", "signature", name="uq_links_workspace_id_signature"),
)
sa.Index("ix_links_from_dataset_id", links.c.from_dataset_id)
sa.Index("ix_links_to_dataset_id", links.c.to_dataset_id)

column_sketches = sa.Table(
    "column_sketches", metadata,
    sa.Column("dataset_id", sa.String(40), primary_key=True),
    sa.Column("column_name", sa.String(255), primary_key=True),
    workspace_column(),
    sa.Column("column_type", sa.String(20), nullable=False),
    sa.Column("manifest_version", sa.Integer, nullable=False),
    sa.Column("sketch", JSON, nullable=False),
    sa.Column("computed_at", TS, nullable=False),
)
sa.Index("ix_column_sketches_workspace_id", column_sketches.c.workspace_id)

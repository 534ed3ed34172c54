"""All tables on one ``metadata``: the core ones plus each feature area's module."""

# Feature areas register their tables on the same metadata by being imported here.
import runyard.store.tables_cleaning  # noqa: F401
import runyard.store.tables_connections  # noqa: F401
import runyard.store.tables_data  # noqa: F401
import runyard.store.tables_evaluation  # noqa: F401
import runyard.store.tables_files  # noqa: F401
import runyard.store.tables_ingest_proxy  # noqa: F401
import runyard.store.tables_links  # noqa: F401
import runyard.store.tables_llm  # noqa: F401
import runyard.store.tables_plans  # noqa: F401
import runyard.store.tables_synth  # noqa: F401
import runyard.store.tables_triggers  # noqa: F401
import runyard.store.tables_ui  # noqa: F401
import runyard.store.tables_workflows  # noqa: F401
from runyard.store.tables import metadata

__all__ = ["metadata"]

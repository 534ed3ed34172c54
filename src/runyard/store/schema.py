"""All tables on one ``metadata``: the core ones plus each feature area's module."""

from runyard.store.tables import metadata

# Feature areas register their tables on the same metadata by being imported here.
# (feature table modules are imported below as they are added)

__all__ = ["metadata"]

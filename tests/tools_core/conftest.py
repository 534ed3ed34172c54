"""The engine tests' fixtures, for the engine-level script-mode tests."""

from tests.engine.conftest import executor, make_request  # noqa: F401 - re-exported fixtures

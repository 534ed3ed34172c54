"""What the tool and run services accept, called in-process: a tool's config and a run's
inputs, tags and trigger are judged by the services themselves, so these need no server
(tests/core/test_tools.py and test_runs.py check the same answers through HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runyard.events import EventHub
from runyard.services.access import Principal
from runyard.services.errors import ValidationFailed
from runyard.services.runs import RunService
from runyard.services.secrets import SecretService, load_cipher
from runyard.services.tools import ToolService
from runyard.store.blobs import BlobStore
from runyard.store.db import Database
from runyard.store.migrate import upgrade
from runyard.store.tables import runs, tool_versions, tools

WS = "ws_validation"
CODE = "def main(a: int, b: int = 2):\n    return a + b\n"
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
          "required": ["a"], "additionalProperties": False}


class Services:
    def __init__(self, root: Path) -> None:
        self.db = Database(f"sqlite:///{root / 'runyard.db'}")
        upgrade(self.db.engine)
        blobs = BlobStore(root / "blobs")
        self.inferred: list[str] = []
        self.tools = ToolService(self.db, blobs, root / "cache", self._infer)
        secrets = SecretService(self.db, load_cipher(root, None))
        self.runs = RunService(self.db, blobs, self.tools, secrets, EventHub(), work_root=root / "work")

    def _infer(self, source_dir: Path, module: str, entrypoint: str, requirements: list[str]) -> dict[str, Any]:
        self.inferred.append(entrypoint)  # what a sandboxed child would report, without one
        return {"input_schema": SCHEMA}

    def count(self, table: sa.Table) -> int:
        with self.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    made = Services(tmp_path)
    try:
        yield made
    finally:
        made.db.dispose()


def member() -> Principal:
    return Principal(token_id="tok_test", workspace_id=WS, role="member")  # type: ignore[arg-type]


def refused(call: Any, **fields: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        call(**fields)
    assert info.value.status == 400
    return info.value


# -- a tool's config --------------------------------------------------------------------------
BAD_CONFIGS: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "Not A Slug"}, "invalid_tool_name", "name"),
    ({"name": "tool_0123456789abcdef"}, "invalid_tool_name", "name"),
    ({"colour": "red"}, "validation_error", "colour"),
    ({"input_schema": {"type": "array"}}, "invalid_input_schema", "input_schema"),
    ({"input_schema": {"type": 5}}, "invalid_input_schema", "input_schema"),
    ({"output_schema": {"type": 5}}, "invalid_output_schema", "output_schema"),
    ({"requirements": ["requests; rm -rf /"]}, "invalid_requirement", "requirements"),
    ({"requirements": ["  "]}, "validation_error", "requirements"),
    ({"required_secrets": ["not a name!"]}, "validation_error", "required_secrets"),
    ({"timeout_s": 0}, "validation_error", "timeout_s"),
    ({"timeout_s": "10"}, "validation_error", "timeout_s"),  # strict: a string is not a number
    ({"memory_mb": 8}, "validation_error", "memory_mb"),
    ({"retries": 11}, "validation_error", "retries"),
    ({"retries": True}, "validation_error", "retries"),  # nor a boolean an integer
    ({"retry_on": ["sometimes"]}, "validation_error", "retry_on"),
    ({"retry_backoff_s": -1}, "validation_error", "retry_backoff_s"),
    ({"reuse_process": "yes"}, "validation_error", "reuse_process"),
]


@pytest.mark.parametrize(("fields", "code", "field"), BAD_CONFIGS, ids=[c[0] and next(iter(c[0])) + "-" + c[1]
                                                                        for c in BAD_CONFIGS])
def test_a_bad_tool_config_is_refused_before_anything_is_stored(
        services: Services, fields: dict[str, Any], code: str, field: str) -> None:
    deploy = {"name": "adder", "code": CODE, **fields}
    error = refused(services.tools.deploy_for, principal=member(), **deploy)
    assert error.code == code, error.message
    details = error.details or {}
    assert field in (details.get("field"), *details.get("fields", [])), details
    assert services.count(tools) == 0 and services.count(tool_versions) == 0
    assert services.inferred == []  # refused before the source is inspected


def test_a_tool_config_is_stored_normalised(services: Services) -> None:
    tool, created = services.tools.deploy_for(
        member(), name="adder", code=CODE, requirements=["  httpx>=0.27 "], timeout_s=5,
        retry_on=["timeout", "error", "timeout"], retry_backoff_s=1, default_inputs={"b": 3})
    assert created and services.inferred == ["main"]
    assert tool["input_schema"] == SCHEMA  # inferred, as none was given
    assert tool["requirements"] == ["httpx>=0.27"]
    assert tool["retry_on"] == ["error", "timeout"]  # one order, no repeats
    assert isinstance(tool["timeout_s"], float) and tool["timeout_s"] == 5.0
    assert tool["retry_backoff_s"] == 1.0 and tool["default_inputs"] == {"b": 3}


# -- a run's inputs, tags and trigger ---------------------------------------------------------
@pytest.fixture
def adder(services: Services) -> Any:
    services.tools.deploy_for(member(), name="adder", code=CODE, default_inputs={"b": 3})
    _, version = services.tools.resolve(WS, "adder")
    return version


def test_inputs_are_merged_with_the_defaults_and_validated(services: Services, adder: Any) -> None:
    assert services.runs.validate_inputs(adder, {"a": 1}) == {"a": 1, "b": 3}
    assert services.runs.validate_inputs(adder, {"a": 1, "b": 5}) == {"a": 1, "b": 5}
    assert services.runs.validate_inputs(adder, {}, partial=True) == {"b": 3}  # required is judged later

    cases: list[tuple[Any, list[str]]] = [
        ({}, ["a"]),  # required
        ({"a": "one"}, ["a"]),  # wrong type
        ({"a": 1, "b": 2.5}, ["b"]),
        ({"a": 1, "c": 1}, ["c"]),  # not in the schema
    ]
    for inputs, fields in cases:
        error = refused(services.runs.validate_inputs, version=adder, inputs=inputs)
        assert error.code == "invalid_inputs", inputs
        assert [e["field"] for e in error.details["errors"]] == fields, error.details
        assert all(e["message"] for e in error.details["errors"])
    error = refused(services.runs.validate_inputs, version=adder, inputs=[1, 2])
    assert (error.code, error.details) == ("invalid_inputs", {"field": "inputs"})


def test_a_run_with_bad_inputs_tags_version_or_trigger_is_not_queued(services: Services, adder: Any) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"inputs": {"a": "one"}}, "invalid_inputs", ""),
        ({"inputs": {"a": 1}, "tags": {"colour": "red"}}, "validation_error", "tags"),
        ({"inputs": {"a": 1}, "tags": {"session": "x" * 201}}, "validation_error", "tags.session"),
        ({"inputs": {"a": 1}, "version": 0}, "validation_error", "version"),
        ({"inputs": {"a": 1}, "trigger": "schedule"}, "validation_error", "trigger"),
        ({"inputs": {"a": 1}, "trigger": "rerun"}, "validation_error", "trigger"),  # only with a parent run
        ({"inputs": {"a": 1}, "idempotency_key": ""}, "invalid_idempotency_key", ""),
    ]
    for fields, code, field in cases:
        error = refused(services.runs.create, principal=member(), tool="adder", **fields)
        assert error.code == code, (fields, error.message)
        if field:
            assert (error.details or {}).get("field") == field, (fields, error.details)
    assert services.count(runs) == 0

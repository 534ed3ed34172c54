"""Signature -> JSON Schema (sandboxed inspection), docstrings, and static source checks."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import textwrap
from pathlib import Path
from typing import Literal, Optional

import pytest

from runyard.engine.introspect import InspectError, SourceError, inspect_entrypoint, validate_source
from runyard.engine.signature_schema import describe, parse_docstring

TOOL = '''
from typing import Literal, Optional
from pydantic import BaseModel, Field


class Address(BaseModel):
    city: str
    zip: str = Field(description="postal code")


def main(
    count: int,
    ratio: float,
    name: str,
    flag: bool,
    tags: list[str],
    weights: dict[str, float],
    mode: Literal["fast", "slow"],
    maybe: Optional[int],
    union_none: str | None = None,
    address: Address | None = None,
    limit: int = 10,
    anything=None,
):
    """Summarise the inputs.

    More detail that is not part of the summary.

    Args:
        count: how many items
        ratio (float): a ratio that goes on
            over two lines
        anything: free-form value
    """
    return None


async def run_async(x: int) -> list[int]:
    return [x]


def no_doc(x):
    pass
'''


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema-src")
    (path / "tool.py").write_text(TOOL)
    return path


@pytest.fixture(scope="module")
def info(source_dir: Path) -> dict:
    return inspect_entrypoint(source_dir, "tool", "main")


def test_basic_types(info: dict) -> None:
    props = info["input_schema"]["properties"]
    assert props["count"] == {"type": "integer", "description": "how many items"}
    assert props["ratio"] == {"type": "number", "description": "a ratio that goes on over two lines"}
    assert props["name"] == {"type": "string"}
    assert props["flag"] == {"type": "boolean"}


def test_containers_literal_and_optional(info: dict) -> None:
    props = info["input_schema"]["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["weights"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"]}
    assert props["maybe"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["union_none"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def test_model_params_defaults_and_required(info: dict) -> None:
    schema = info["input_schema"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["count", "ratio", "name", "flag", "tags", "weights", "mode", "maybe"]
    props = schema["properties"]
    assert props["limit"] == {"type": "integer", "default": 10}
    assert props["anything"] == {"default": None, "description": "free-form value"}
    assert props["address"] == {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None}
    address = schema["$defs"]["Address"]
    assert address["type"] == "object"
    assert address["required"] == ["city", "zip"]
    assert address["properties"]["zip"]["description"] == "postal code"


def test_description_and_async(info: dict, source_dir: Path) -> None:
    assert info["description"] == "Summarise the inputs."
    assert info["is_async"] is False
    other = inspect_entrypoint(source_dir, "tool", "run_async")
    assert other["is_async"] is True
    assert other["output_schema"] == {"type": "array", "items": {"type": "integer"}}
    bare = inspect_entrypoint(source_dir, "tool", "no_doc")
    assert bare["description"] is None
    assert bare["input_schema"]["properties"] == {"x": {}}


def test_inspection_errors_are_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("print('importing')\nimport not_there_xyz\n")
    with pytest.raises(InspectError) as info:
        inspect_entrypoint(tmp_path, "broken", "main")
    assert info.value.type == "import_error"
    assert "not_there_xyz" in info.value.message
    assert "importing" in info.value.output

    (tmp_path / "ok.py").write_text("def main():\n    pass\n")
    with pytest.raises(InspectError) as info:
        inspect_entrypoint(tmp_path, "ok", "missing")
    assert info.value.type == "entrypoint_not_found"

    (tmp_path / "slow.py").write_text("import time\ntime.sleep(30)\n")
    with pytest.raises(InspectError) as info:
        inspect_entrypoint(tmp_path, "slow", "main", timeout_s=1)
    assert info.value.type == "timeout"


def test_inspection_runs_sandboxed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_TEST_CANARY", "leaked")
    (tmp_path / "spy.py").write_text(
        "import os\nif 'RUNYARD_TEST_CANARY' in os.environ or os.getcwd() == " + repr(str(Path.cwd())) + ":\n"
        "    raise RuntimeError('not sandboxed')\n"
        "def main(x: int):\n    pass\n"
    )
    assert inspect_entrypoint(tmp_path, "spy", "main")["input_schema"]["required"] == ["x"]


# --------------------------------------------------------------------------- stdlib fallback


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Item:
    name: str
    qty: int = 1


def stdlib_target(
    a: int,
    b: float,
    c: str,
    d: bool,
    e: list[int],
    f: dict[str, bool],
    g: Literal[1, 2],
    h: Optional[str],  # noqa: UP045 - the typing spelling is what is under test
    i: int | None = None,
    item: Item | None = None,
    color: Color = Color.RED,
    when: datetime.date | None = None,
    pair: tuple[int, str] = (1, "a"),
    untyped=5,
) -> None:
    """Target.

    Parameters
    ----------
    a : int
        the a
    b : float
        the b,
        continued
    """


def test_stdlib_mapping_matches_pydantic_for_basic_types() -> None:
    schema = describe(stdlib_target, use_pydantic=False)["input_schema"]
    props = schema["properties"]
    assert props["a"] == {"type": "integer", "description": "the a"}
    assert props["b"] == {"type": "number", "description": "the b, continued"}
    assert props["c"] == {"type": "string"}
    assert props["d"] == {"type": "boolean"}
    assert props["e"] == {"type": "array", "items": {"type": "integer"}}
    assert props["f"] == {"type": "object", "additionalProperties": {"type": "boolean"}}
    assert props["g"] == {"enum": [1, 2], "type": "integer"}
    assert props["h"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["i"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert props["item"] == {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}], "default": None}
    assert schema["$defs"]["Item"]["required"] == ["name"]
    assert schema["$defs"]["Item"]["properties"]["qty"] == {"type": "integer", "default": 1}
    assert props["color"] == {"$ref": "#/$defs/Color", "default": "red"}
    assert schema["$defs"]["Color"]["enum"] == ["red", "blue"]
    assert props["when"]["anyOf"][0] == {"type": "string", "format": "date"}
    assert props["pair"]["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert props["untyped"] == {"default": 5}
    assert schema["required"] == ["a", "b", "c", "d", "e", "f", "g", "h"]


def test_pydantic_and_stdlib_agree_on_required_and_defaults() -> None:
    with_pydantic = describe(stdlib_target)["input_schema"]
    without = describe(stdlib_target, use_pydantic=False)["input_schema"]
    assert with_pydantic["required"] == without["required"]
    for name in ("a", "c", "e", "f", "i"):
        assert with_pydantic["properties"][name] == without["properties"][name], name


def test_var_kwargs_allow_extra_inputs() -> None:
    def fn(a: int, *args: int, **kwargs: str) -> None: ...

    schema = describe(fn)["input_schema"]
    assert schema["additionalProperties"] is True
    assert list(schema["properties"]) == ["a"]


# --------------------------------------------------------------------------- docstrings


def test_docstring_styles() -> None:
    google = parse_docstring(
        textwrap.dedent(
            """\
            Fetch rows.

            Args:
                table (str): the table
                limit: at most this
                    many rows
                **options: extra options

            Returns:
                rows
            """
        )
    )
    assert google == (
        "Fetch rows.",
        {"table": "the table", "limit": "at most this many rows", "options": "extra options"},
    )

    numpy = parse_docstring(
        "Scale values.\n\nParameters\n----------\nx : array\n    the values\nfactor : float, optional\n"
        "    multiply by\n    this\n\nReturns\n-------\narray\n    scaled\n"
    )
    assert numpy == ("Scale values.", {"x": "the values", "factor": "multiply by this"})

    rest = parse_docstring(
        "Send it.\n\n:param str to: recipient\n:param body: the text\n    of the mail\n:returns: id\n"
    )
    assert rest == ("Send it.", {"to": "recipient", "body": "the text of the mail"})

    assert parse_docstring(None) == (None, {})
    assert parse_docstring("One line\nsummary continues.\n\nBody.") == ("One line summary continues.", {})


# --------------------------------------------------------------------------- static checks


def test_validate_source_accepts_sync_and_async_entrypoints() -> None:
    validate_source("def main(x: int):\n    return x\n", "main")
    validate_source("import asyncio\n\nasync def main():\n    await asyncio.sleep(0)\n", "main")


def test_validate_source_reports_syntax_errors_with_line() -> None:
    with pytest.raises(SourceError) as info:
        validate_source("x = 1\n\ndef main(:\n    pass\n", "main")
    assert info.value.line == 3
    with pytest.raises(SourceError) as info:
        validate_source("def main():\n    pass\nreturn 5\n", "main")
    assert info.value.line == 3
    assert "outside function" in info.value.message


def test_validate_source_requires_top_level_entrypoint() -> None:
    with pytest.raises(SourceError) as info:
        validate_source("def other():\n    def main():\n        pass\n", "main")
    assert "'main'" in info.value.message
    assert info.value.line is None
    with pytest.raises(SourceError):
        validate_source("main = lambda: 1\n", "main")

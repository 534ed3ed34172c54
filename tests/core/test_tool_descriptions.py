"""A tool deployed without a description gets its entry function's docstring summary."""

from __future__ import annotations

import httpx

from tests.support.api import deploy

CODE = '''
def main(a: int) -> int:
    """Double a number.

    Args:
        a: the number.
    """
    return 2 * a
'''


def test_the_docstring_summary_is_the_default_description(api: httpx.Client, unique: str) -> None:
    tool = deploy(api, f"doc-{unique}", CODE)
    assert tool["description"] == "Double a number."
    assert tool["input_schema"]["properties"]["a"]["description"] == "the number."
    given = deploy(api, f"given-{unique}", CODE, description="mine")
    assert given["description"] == "mine"
    bare = deploy(api, f"bare-{unique}", "def main():\n    return 1\n")
    assert bare["description"] == ""

from __future__ import annotations

import copy
from typing import Any

import pytest

from runyard import synth
from tests.support.synth import CUSTOMERS


@pytest.fixture
def customers_doc() -> dict[str, Any]:
    return copy.deepcopy(CUSTOMERS)


@pytest.fixture
def customers() -> synth.Template:
    return synth.parse_template(copy.deepcopy(CUSTOMERS))

"""DataGen's client surface over runyard: the methods, parameters, defaults, return shapes,
status words and error classes of DataGen's SDK reference, over :mod:`runyard.sdk` (and
nothing else of runyard's, so the light client install is enough).

>>> from runyard.compat.datagen import DatagenClient
>>> client = DatagenClient(api_key="ry_…", base_url="http://127.0.0.1:8000")
>>> tool = client.deploy_custom_tool("doubler", "result = x * 2", output_vars=["result"],
...                                  default_input_vars={"x": 1})
>>> client.run_custom_tool(tool["deployment_uuid"], {"x": 21})["output_vars"]
{'result': 42}

The published ``datagen-python-sdk`` (``execute_tool`` only) works against runyard's
``/compat/datagen`` without this package; docs/compat.md tells both stories.
"""

from __future__ import annotations

from .client import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, MAX_LIST_LIMIT, SORT_FIELDS, DatagenClient
from .errors import (
    DatagenAuthError,
    DatagenDeploymentError,
    DatagenError,
    DatagenHttpError,
    DatagenSecretError,
    DatagenToolError,
)
from .statuses import STATUS_OF, datagen_status

__all__ = [
    "DatagenClient",
    "DatagenError",
    "DatagenAuthError",
    "DatagenToolError",
    "DatagenHttpError",
    "DatagenDeploymentError",
    "DatagenSecretError",
    "STATUS_OF",
    "datagen_status",
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "MAX_LIST_LIMIT",
    "SORT_FIELDS",
]

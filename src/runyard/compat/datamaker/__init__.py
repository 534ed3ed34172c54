"""DataMaker's client surface over runyard (DataMaker publishes no Python SDK).

>>> from runyard.compat.datamaker import DataMaker
>>> dm = DataMaker(api_key="ry_…", base_url="http://127.0.0.1:8000")
>>> scn = dm.scenarios.create("nightly-load", "def main(size: int = 10):\\n    return {'rows': size}\\n")
>>> dm.scenarios.run(scn["id"], {"size": "500"}, wait=True)["output"]
{'rows': 500}

``scenarios`` works over runyard's own API; ``templates``, ``sets``, ``files`` (workspace
files) and ``connections`` call DataMaker's REST paths, which runyard serves under
``/compat/datamaker`` (docs/compat.md). Imports nothing of runyard but :mod:`runyard.sdk`.
"""

from __future__ import annotations

import os
from typing import Any

from runyard.sdk import Client

from .errors import DataMakerConnectionError, DataMakerError
from .rest import DEFAULT_PREFIX, Connections, Files, Sets, Templates
from .scenarios import WAIT_LIMIT_S, Scenarios, coerce_params

__all__ = ["DataMaker", "DataMakerError", "DataMakerConnectionError", "Scenarios", "Templates", "Sets", "Files",
           "Connections", "WAIT_LIMIT_S", "coerce_params"]


class DataMaker:
    """A DataMaker client talking to runyard.

    ``api_key``: a runyard key (default ``$DM_API_KEY``, then ``$RUNYARD_API_KEY``), sent
    as ``Authorization: Bearer`` as DataMaker's are. ``base_url``: the runyard server
    (``http://host:8000``; default ``$DM_BASE_URL``, then ``$RUNYARD_BASE_URL``, then the
    SDK's default). Retries and timeouts are the runyard SDK's. ``client``: a runyard
    :class:`~runyard.sdk.Client` to use instead (its key and URL then apply). ``prefix``: where
    the server serves DataMaker's REST paths (its ``RUNYARD_DATAMAKER_PREFIX``).
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 2, client: Client | None = None, prefix: str = DEFAULT_PREFIX,
                 **client_options: Any) -> None:
        if client is None:
            client = Client(
                api_key=api_key if api_key is not None else os.environ.get("DM_API_KEY") or None,
                base_url=base_url if base_url is not None else os.environ.get("DM_BASE_URL") or None,
                timeout=timeout, max_retries=max_retries, **client_options,
            )
            self._owns_client = True
        else:
            self._owns_client = False
        self.client = client
        self.scenarios = Scenarios(client)
        self.templates = Templates(client, prefix)
        self.sets = Sets(client, prefix)
        self.files = Files(client, prefix)
        self.connections = Connections(client, prefix)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> DataMaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DataMaker(base_url={self.client.server_url!r})"

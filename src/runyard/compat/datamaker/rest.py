"""``DataMaker(...).templates / .sets / .files / .connections``: DataMaker's REST sections
called on the paths runyard serves for them (``/compat/datamaker`` by default; the server's
``RUNYARD_DATAMAKER_PREFIX``), through the runyard SDK's transport (its retries, timeouts
and ``Retry-After`` handling).

Answers are the REST API's JSON as dicts (lists ``{"items", "next_cursor", "total"}``);
generated rows come back as the bytes of the chosen format. Failures raise
:class:`~runyard.compat.datamaker.DataMakerError`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from runyard.sdk import Client
from runyard.sdk._base import FilePart, RequestOptions

from .errors import translated

__all__ = ["DEFAULT_PREFIX", "Connections", "Files", "Sets", "Templates"]

DEFAULT_PREFIX = "/compat/datamaker"


def _seg(value: str) -> str:
    """One path segment: a '/' or '..' in a name cannot reach another path."""
    return quote(str(value), safe="@")


class _Section:
    def __init__(self, client: Client, prefix: str) -> None:
        self._client = client
        self._prefix = "/" + prefix.strip("/")

    def _call(self, method: str, path: str, **options: Any) -> Any:
        with translated():
            response = self._client.request(RequestOptions(method, self._prefix + path, root=True, **options))
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content


class Templates(_Section):
    """``/templates``: list, create, read (``version=`` reads ``{id}@v{n}``), update (a new
    version), soft-delete, versions, generate, preview."""

    def list(self, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        return self._call("GET", "/templates", params={"cursor": cursor, "limit": limit})

    def create(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """``{name, fields, description?, locale?}`` (runyard's template document)."""
        return self._call("POST", "/templates", json=dict(template))

    def get(self, template_id: str, *, version: int | None = None) -> dict[str, Any]:
        ref = f"{template_id}@v{int(version)}" if version is not None else template_id
        return self._call("GET", f"/templates/{_seg(ref)}")

    def update(self, template_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", f"/templates/{_seg(template_id)}", json=dict(changes))

    def delete(self, template_id: str) -> None:
        self._call("DELETE", f"/templates/{_seg(template_id)}")

    def versions(self, template_id: str, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        return self._call("GET", f"/templates/{_seg(template_id)}/versions", params={"cursor": cursor, "limit": limit})

    def generate(self, template_id: str, *, count: int, format: str = "json", seed: str | int | None = None,
                 overrides: Mapping[str, Any] | None = None) -> bytes:
        """``count`` rows in ``format`` (``json``, ``csv``, ``sql``, ``xlsx``; runyard also
        ``ndjson``, ``parquet``) as bytes: the same seed gives the same bytes."""
        body: dict[str, Any] = {"count": count, "format": format}
        if seed is not None:
            body["seed"] = seed
        if overrides is not None:
            body["overrides"] = dict(overrides)
        with translated():
            response = self._client.request(RequestOptions(
                "POST", f"{self._prefix}/templates/{_seg(template_id)}/generate", json=body, root=True))
        return response.content

    def preview(self, template_id: str, *, seed: str | int | None = None) -> dict[str, Any]:
        """Three rows; never counted against the generation quota."""
        return self._call("POST", f"/templates/{_seg(template_id)}/preview",
                          json={} if seed is None else {"seed": seed})


class Sets(_Section):
    """``/sets``: saved rows by name; saving a name again adds a version."""

    def list(self, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        return self._call("GET", "/sets", params={"cursor": cursor, "limit": limit})

    def save(self, name: str, rows: builtins.list[Mapping[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/sets", json={"name": name, "rows": [dict(r) for r in rows]})

    def load(self, name: str, *, version: int | None = None, offset: int | None = None,
             limit: int | None = None) -> dict[str, Any]:
        return self._call("GET", f"/sets/{_seg(name)}", params={"version": version, "offset": offset, "limit": limit})

    def remove(self, name: str) -> None:
        self._call("DELETE", f"/sets/{_seg(name)}")


class Files(_Section):
    """``/workspace/files``: the workspace's files by name."""

    def list(self, *, cursor: str | None = None, limit: int | None = None,
             prefix: str | None = None) -> dict[str, Any]:
        return self._call("GET", "/workspace/files", params={"cursor": cursor, "limit": limit, "prefix": prefix})

    def upload(self, name: str, source: Path | bytes | IO[bytes], *, content_type: str = "application/octet-stream",
               overwrite: bool = False) -> dict[str, Any]:
        """Store ``source`` (a path, bytes or a binary file) as ``name`` (multipart ``name`` +
        ``file``); an existing name is 409 ``file_exists`` unless ``overwrite``."""
        return self._call("POST", "/workspace/files", data={"name": name},
                          params={"overwrite": "true"} if overwrite else None,
                          files=[FilePart("file", name.rsplit("/", 1)[-1], source, content_type)])

    def download(self, name: str) -> bytes:
        with translated():
            response = self._client.request(RequestOptions(
                "GET", f"{self._prefix}/workspace/files/{_seg(name)}", root=True))
        return response.content

    def remove(self, name: str) -> None:
        self._call("DELETE", f"/workspace/files/{_seg(name)}")


class Connections(_Section):
    """``/connections``: list, create (``{name, type, config}``), verify, metadata."""

    def list(self, *, cursor: str | None = None, limit: int | None = None, type: str | None = None) -> dict[str, Any]:
        return self._call("GET", "/connections", params={"cursor": cursor, "limit": limit, "type": type})

    def create(self, name: str, type: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/connections", json={"name": name, "type": type, "config": dict(config)})

    def verify(self, connection_id: str) -> dict[str, Any]:
        return self._call("POST", f"/connections/{_seg(connection_id)}/verify")

    def metadata(self, connection_id: str) -> dict[str, Any]:
        return self._call("GET", f"/connections/{_seg(connection_id)}/metadata")

"""One way to call runyard for every Eigenpal resource: the runyard SDK's transport (its
retries, timeouts, ``Retry-After``), answers as plain JSON, errors as Eigenpal's."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from runyard.sdk import Client
from runyard.sdk._base import FilePart, RequestOptions

from .errors import translated

FileSource = Path | str | bytes | IO[bytes]


def seg(value: Any) -> str:
    """One path segment: a '/' or '..' in an id or a name cannot reach another path."""
    return quote(str(value), safe="")


def file_part(field: str, source: FileSource, filename: str | None = None) -> FilePart:
    """A multipart part from a path (``Path`` or ``str``), bytes, or a binary file."""
    if isinstance(source, str):
        source = Path(source)
    if isinstance(source, Path):
        name = filename or source.name
    else:
        name = filename or getattr(source, "name", None) or field
        name = Path(str(name)).name
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FilePart(field, name, source, content_type)


class Transport:
    def __init__(self, sdk: Client) -> None:
        self.sdk = sdk

    def send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
             files: list[FilePart] | None = None, data: Mapping[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        """The answer's JSON (``None`` for 204), or its bytes when it is not JSON."""
        with translated():
            response = self.sdk.request(RequestOptions(
                method, path, params={k: v for k, v in (params or {}).items() if v is not None}, json=json,
                files=files or [], data=data, timeout=timeout))
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").split(";")[0].strip() == "application/json":
            return response.json()
        return response.content

    def json(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        answer = self.send(method, path, **options)
        return answer if isinstance(answer, dict) else {}

    def raw(self, method: str, path: str, **options: Any) -> bytes:
        """The answer's bytes, whatever its content type."""
        with translated():
            response = self.sdk.request(RequestOptions(method, path, **options))
        return response.content

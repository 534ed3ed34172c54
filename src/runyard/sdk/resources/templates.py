"""``client.templates``: synthetic data templates, preview and streaming generation."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .._base import RequestOptions, Timeout
from .._endpoint import Emit, Listing, Open, Plan, Read, Send, endpoint, listing, streamed
from ..models import RunyardModel
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["Templates", "AsyncTemplates", "Template", "Generation"]


class Template(RunyardModel):
    id: str
    name: str
    version: int
    latest_version: int
    locale: str | None = None
    description: str | None = None
    fields: list[dict[str, Any]]


@dataclass
class Generation:
    """What a generation returned: the seed that reproduces it and where the bytes went."""

    seed: int
    version: int
    bytes_written: int
    path: str | None = None


def _ref(template: str, version: int | None) -> str:
    return f"{seg(template)}@v{version}" if version else seg(template)


def _generate_body(count: int, fmt: str | None, seed: int | str | None, overrides: Mapping[str, Any] | None,
                   version: int | None, options: Mapping[str, Any] | None,
                   into_set: str | None = None) -> dict[str, Any]:
    return compact(count=count, format=fmt, seed=seed, overrides=dict(overrides) if overrides else None,
                   version=version, options=dict(options) if options else None, into_set=into_set)


def _generation(headers: Mapping[str, str], written: int, path: str | None) -> Generation:
    return Generation(seed=int(headers["x-runyard-seed"]), version=int(headers["x-runyard-template-version"]),
                      bytes_written=written, path=path)


class TemplatesAPI:
    """``client.templates``, written once for :class:`Templates` and :class:`AsyncTemplates`."""

    @endpoint
    def create(self, document: Mapping[str, Any], *, timeout: Timeout = None) -> Plan[Template]:
        """Create a template from its document (``name``, ``locale``, ``fields``…)."""
        opts = RequestOptions("POST", "/templates", json=dict(document), timeout=timeout)
        return Template.model_validate((yield Send(opts)).json())

    @endpoint
    def get(self, template: str, *, version: int | None = None, timeout: Timeout = None) -> Plan[Template]:
        """A template by id or name: its latest version, or ``version``."""
        opts = RequestOptions("GET", f"/templates/{_ref(template, version)}", timeout=timeout)
        return Template.model_validate((yield Send(opts)).json())

    @endpoint
    def update(self, template: str, *, timeout: Timeout = None, **changes: Any) -> Plan[Template]:
        """Change ``name``, ``description``, ``locale`` or ``fields``; creates a new version."""
        opts = RequestOptions("PATCH", f"/templates/{seg(template)}", json=changes, timeout=timeout)
        return Template.model_validate((yield Send(opts)).json())

    @listing
    def list(self, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Template]:
        """The workspace's templates, latest versions."""
        return Listing(Template, lambda cursor: RequestOptions(
            "GET", "/templates", params={"limit": limit, "cursor": cursor}, timeout=timeout))

    @listing
    def versions(self, template: str, *, limit: int | None = None, timeout: Timeout = None) -> Listing[Template]:
        """Every version of a template, newest first."""
        return Listing(Template, lambda cursor: RequestOptions(
            "GET", f"/templates/{seg(template)}/versions", params={"limit": limit, "cursor": cursor},
            timeout=timeout))

    @endpoint
    def delete(self, template: str, *, timeout: Timeout = None) -> Plan[None]:
        """Delete a template and its versions."""
        yield Send(RequestOptions("DELETE", f"/templates/{seg(template)}", timeout=timeout))

    @endpoint
    def preview(self, template: str, *, seed: int | str | None = None, overrides: Mapping[str, Any] | None = None,
                version: int | None = None, timeout: Timeout = None) -> Plan[dict[str, Any]]:
        """The first 3 rows of the generation with this seed (free of quota)."""
        body = compact(seed=seed, overrides=dict(overrides) if overrides else None, version=version)
        opts = RequestOptions("POST", f"/templates/{seg(template)}/preview", json=body, timeout=timeout)
        return dict((yield Send(opts)).json())

    @endpoint
    def generate(self, template: str, *, count: int, to: str | os.PathLike[str] | IO[bytes],
                 format: str = "csv", seed: int | str | None = None, overrides: Mapping[str, Any] | None = None,
                 version: int | None = None, options: Mapping[str, Any] | None = None,
                 progress: Callable[[int], Any] | None = None,
                 on_start: Callable[[int, int], Any] | None = None, timeout: Timeout = None) -> Plan[Generation]:
        """Stream a generation into a file path or binary file object.

        ``on_start(seed, template_version)`` is called once the server has accepted the
        request, before the first byte; ``progress(bytes_so_far)`` after every received
        piece. ``timeout`` bounds the wait for each piece (a read timeout between
        chunks), never the whole download.
        """
        body = _generate_body(count, format, seed, overrides, version, options)
        opts = RequestOptions("POST", f"/templates/{seg(template)}/generate", json=body, timeout=timeout)
        path = os.fspath(to) if isinstance(to, str | os.PathLike) else None
        written = 0
        stream = yield Open(opts)
        if on_start is not None:
            on_start(int(stream.headers["x-runyard-seed"]), int(stream.headers["x-runyard-template-version"]))
        sink = open(path, "wb") if path else to  # noqa: SIM115 - closed below
        try:
            while (piece := (yield Read(stream))) is not None:
                sink.write(piece)  # type: ignore[union-attr]
                written += len(piece)
                if progress is not None:
                    progress(written)
        finally:
            if path:
                sink.close()  # type: ignore[union-attr]
        return _generation(stream.headers, written, path)

    @streamed
    def rows(self, template: str, *, count: int, seed: int | str | None = None,
             overrides: Mapping[str, Any] | None = None, version: int | None = None,
             timeout: Timeout = None) -> Plan[None]:
        """Iterate generated rows as dicts while they stream (NDJSON underneath)."""
        body = _generate_body(count, "ndjson", seed, overrides, version, None)
        opts = RequestOptions("POST", f"/templates/{seg(template)}/generate", json=body, timeout=timeout)
        stream = yield Open(opts, lines=True)
        while (line := (yield Read(stream))) is not None:
            if line:
                yield Emit(json.loads(line))

    @endpoint
    def generate_into_set(self, template: str, set_name: str, *, count: int, seed: int | str | None = None,
                          overrides: Mapping[str, Any] | None = None, version: int | None = None,
                          timeout: Timeout = None) -> Plan[dict[str, Any]]:
        """Write a generation into a saved set (a new version of it) instead of streaming it."""
        body = _generate_body(count, None, seed, overrides, version, None, into_set=set_name)
        opts = RequestOptions("POST", f"/templates/{seg(template)}/generate", json=body, timeout=timeout)
        return dict((yield Send(opts)).json())


class Templates(TemplatesAPI, SyncResource):
    """``client.templates``: synthetic data templates, preview and streaming generation."""


class AsyncTemplates(TemplatesAPI, AsyncResource):
    """``client.templates`` of :class:`~runyard.AsyncClient` (coroutines; ``rows`` is an async iterator)."""

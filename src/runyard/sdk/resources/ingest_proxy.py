"""``client.ingest_proxy``: auto-modelling pipeline runs (start, state, the NDJSON event
stream with reconnects, trace, hook answers). See docs/ingest-proxy.md."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from .._base import RequestOptions, Timeout
from .._endpoint import Close, Emit, Open, Plan, Read, Send, endpoint, streamed
from ..errors import APIConnectionError
from ..models import IngestProxyEvent, IngestProxyRun, IngestProxyTrace
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["IngestProxy", "AsyncIngestProxy"]
#: The server ends a stream after at most 300 s without its last event; a read waits a bit longer.
STREAM_READ_TIMEOUT = 330.0
#: Reconnects in a row that bring no new event before ``stream`` gives up.
MAX_EMPTY_RECONNECTS = 1000
END_EVENTS = ("complete", "error")


class IngestProxyAPI:
    """``client.ingest_proxy``, written once for :class:`IngestProxy` and :class:`AsyncIngestProxy`."""

    @endpoint
    def start(
        self,
        namespace: str,
        *,
        data: Sequence[Mapping[str, Any]] | None = None,
        data_url: str | None = None,
        workspace_file: str | None = None,
        dataset: str | None = None,
        user_prompt: str | None = None,
        model: bool | None = None,
        ingest: bool | None = None,
        ontology: bool | None = None,
        max_eval_retries: int | None = None,
        max_rows_for_modeling: int | None = None,
        max_sample_rows: int | None = None,
        enable_human_in_the_loop: bool | None = None,
        predefined_schema: Any = None,
        explosion_helper_prompt: str | None = None,
        coalescence_helper_prompt: str | None = None,
        llm: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> Plan[IngestProxyRun]:
        """Start a run over ``data`` (rows), ``data_url`` (fetched by the server under its
        outbound-host policy) or ``workspace_file`` (a file's name): a schema proposed by the model (or ``predefined_schema``, or
        inferred without one), then the rows ingested into ``namespace`` and the ontology
        curated. Follow it with :meth:`stream`."""
        body = compact(namespace=namespace, data=[dict(r) for r in data] if data is not None else None,
                       data_url=data_url, workspace_file=workspace_file, dataset=dataset, user_prompt=user_prompt, model=model, ingest=ingest,
                       ontology=ontology, max_eval_retries=max_eval_retries,
                       max_rows_for_modeling=max_rows_for_modeling, max_sample_rows=max_sample_rows,
                       enable_human_in_the_loop=enable_human_in_the_loop, predefined_schema=predefined_schema,
                       explosion_helper_prompt=explosion_helper_prompt,
                       coalescence_helper_prompt=coalescence_helper_prompt,
                       llm=dict(llm) if llm is not None else None)
        opts = RequestOptions("POST", "/ingest-proxy/runs", json=body, idempotency_key="", max_retries=0,
                              timeout=timeout)
        return IngestProxyRun.model_validate((yield Send(opts)).json())

    @endpoint
    def get(self, run_id: str, *, timeout: Timeout = None) -> Plan[IngestProxyRun]:
        """The run's state: status, phase, schema, the hook it waits on, output or error."""
        opts = RequestOptions("GET", f"/ingest-proxy/runs/{seg(run_id)}", timeout=timeout)
        return IngestProxyRun.model_validate((yield Send(opts)).json())

    @streamed
    def stream(self, run_id: str, *, start_index: int = 0, until_hook: bool = False,
               timeout: Timeout = None) -> Plan[None]:
        """The run's events from ``start_index`` as they come (``async for`` on
        :class:`AsyncIngestProxy`), until its ``complete`` or ``error`` event — or, with
        ``until_hook``, its next ``hook`` event. A stream the server ends early (it follows
        for at most 300 s) or a dropped connection is reopened from the last event seen."""
        index = start_index
        empty = 0
        while True:
            opts = RequestOptions("GET", f"/ingest-proxy/runs/{seg(run_id)}/stream", params={"start_index": index},
                                  headers={"Accept": "application/x-ndjson"}, max_retries=2,
                                  timeout=timeout if timeout is not None else httpx.Timeout(STREAM_READ_TIMEOUT,
                                                                                             connect=10.0))
            stream = yield Open(opts, lines=True)
            got = False
            while (line := (yield Read(stream))) is not None:
                if not line.strip():
                    continue  # a keep-alive
                event = IngestProxyEvent.model_validate(json.loads(line))
                index, got = event.index + 1, True
                yield Emit(event)
                if event.type in END_EVENTS or (until_hook and event.type == "hook"):
                    yield Close(stream)
                    return
            yield Close(stream)
            empty = 0 if got else empty + 1
            if empty > MAX_EMPTY_RECONNECTS:
                raise APIConnectionError("the run's event stream kept ending without new events")

    @endpoint
    def trace(self, run_id: str, *, timeout: Timeout = None) -> Plan[IngestProxyTrace]:
        """Every model call (prompt, response, tokens, ms), the tokens summed, each phase's duration."""
        opts = RequestOptions("GET", f"/ingest-proxy/runs/{seg(run_id)}/trace", timeout=timeout)
        return IngestProxyTrace.model_validate((yield Send(opts)).json())

    @endpoint
    def hook(
        self,
        run_id: str,
        *,
        kind: str,
        hook_id: str | None = None,
        approved: bool | None = None,
        schema: Any = None,
        answer: str | None = None,
        token: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[IngestProxyRun]:
        """Answer the hook the run waits on: ``schema_review`` (``approved``, or a replacement
        ``schema``), ``clarification`` (``answer``) or ``token_refresh`` (``token``: a fresh key
        of the same user). 409 ``hook_not_waiting`` when it waits on no such hook."""
        body = compact(kind=kind, hook_id=hook_id, approved=approved, schema=schema, answer=answer, token=token)
        opts = RequestOptions("POST", f"/ingest-proxy/runs/{seg(run_id)}/hook", json=body, idempotency_key="",
                              max_retries=0, timeout=timeout)
        return IngestProxyRun.model_validate((yield Send(opts)).json())


class IngestProxy(IngestProxyAPI, SyncResource):
    """``client.ingest_proxy``: auto-modelling pipeline runs."""


class AsyncIngestProxy(IngestProxyAPI, AsyncResource):
    """``client.ingest_proxy`` of :class:`~runyard.AsyncClient` (coroutines; ``stream`` is
    an async iterator)."""

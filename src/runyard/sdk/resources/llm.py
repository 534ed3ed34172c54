"""``client.llm``: language-model providers (admins) and the model features that are not a
flag on another call (``infer_description``, ``ask``, ``autorag``). Natural-language queries
are ``client.datasets.query(question, natural_language=True)``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from .._base import RequestOptions, Timeout
from .._endpoint import Close, Emit, Listing, Open, Plan, Read, Send, endpoint, listing, streamed
from ..errors import APIConnectionError
from ..models import AskAnswer, AskError, AskEvent, AskPlan, AskStep, InferredDescription, LLMProvider
from ..streaming import SSEDecoder
from ._resource import AsyncResource, SyncResource, compact, seg

__all__ = ["LLM", "AsyncLLM"]
_UNSET: Any = object()
#: How long ``ask`` waits for its next event (a model call, retries included, or a query).
ASK_READ_TIMEOUT = 600.0
_ASK_EVENTS: dict[str, type[AskEvent]] = {"plan": AskPlan, "step": AskStep, "answer": AskAnswer,
                                          "error": AskError}


def _ask_body(query: str, namespace: str | None, helper_prompt: str | None, provider: str | None,
              model: str | None, max_steps: int | None) -> dict[str, Any]:
    return compact(query=query, namespace=namespace, helper_prompt=helper_prompt, provider=provider, model=model,
                   max_steps=max_steps)


class LLMAPI:
    """``client.llm``, written once for :class:`LLM` and :class:`AsyncLLM`."""

    @endpoint
    def create_provider(
        self,
        name: str,
        *,
        base_url: str,
        default_model: str,
        api_key: str | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        default: bool | None = None,
        timeout: Timeout = None,
    ) -> Plan[LLMProvider]:
        """Add an OpenAI-compatible provider (admins). ``base_url`` is the endpoint before
        ``/chat/completions``; the key is stored encrypted and never returned. The first
        provider becomes the workspace default unless ``default=False``."""
        body = compact(name=name, kind="openai-compatible", base_url=base_url, default_model=default_model,
                       api_key=api_key, timeout_s=timeout_s, max_retries=max_retries, default=default)
        opts = RequestOptions("POST", "/llm/providers", json=body, timeout=timeout)
        return LLMProvider.model_validate((yield Send(opts)).json())

    @listing
    def list_providers(self, *, timeout: Timeout = None) -> Listing[LLMProvider]:
        """The workspace's providers (and ``env``, from ``RUNYARD_LLM_BASE_URL``, when set)."""
        return Listing(LLMProvider, lambda cursor: RequestOptions(
            "GET", "/llm/providers", params={"cursor": cursor}, timeout=timeout))

    @endpoint
    def get_provider(self, provider: str, *, timeout: Timeout = None) -> Plan[LLMProvider]:
        """One provider, by name or id."""
        opts = RequestOptions("GET", f"/llm/providers/{seg(provider)}", timeout=timeout)
        return LLMProvider.model_validate((yield Send(opts)).json())

    @endpoint
    def update_provider(
        self,
        provider: str,
        *,
        name: str | None = None,
        base_url: str | None = None,
        default_model: str | None = None,
        api_key: str | None = _UNSET,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        default: bool | None = None,
        timeout: Timeout = None,
    ) -> Plan[LLMProvider]:
        """Change the fields given; ``api_key=None`` removes the key (leave it out to keep it)."""
        body = compact(name=name, base_url=base_url, default_model=default_model, timeout_s=timeout_s,
                       max_retries=max_retries, default=default)
        if api_key is not _UNSET:
            body["api_key"] = api_key
        opts = RequestOptions("PATCH", f"/llm/providers/{seg(provider)}", json=body, timeout=timeout)
        return LLMProvider.model_validate((yield Send(opts)).json())

    @endpoint
    def delete_provider(self, provider: str, *, timeout: Timeout = None) -> Plan[None]:
        """Remove a provider."""
        yield Send(RequestOptions("DELETE", f"/llm/providers/{seg(provider)}", timeout=timeout))

    @endpoint
    def infer_description(
        self,
        namespace: str,
        dataset: str,
        *,
        sample: Sequence[Mapping[str, Any]] | None = None,
        current_description: str | None = None,
        current_schema: Sequence[Mapping[str, Any]] | None = None,
        provider: str | None = None,
        model: str | None = None,
        timeout: Timeout = None,
    ) -> Plan[InferredDescription]:
        """A description and field definitions for a dataset, written by the model; with no
        provider configured, built from the column statistics (``source == "statistics"``).
        Nothing is saved: apply it with ``client.datasets.update``."""
        body = compact(sample=[dict(r) for r in sample] if sample is not None else None,
                       current_description=current_description,
                       current_schema=[dict(c) for c in current_schema] if current_schema is not None else None,
                       provider=provider, model=model)
        opts = RequestOptions("POST", f"/namespaces/{seg(namespace)}/datasets/{seg(dataset)}/infer-description",
                              json=body, idempotency_key="", timeout=timeout)
        return InferredDescription.model_validate((yield Send(opts)).json())

    @streamed
    def ask(
        self,
        query: str,
        *,
        namespace: str | None = None,
        helper_prompt: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        max_steps: int | None = None,
        timeout: Timeout = None,
    ) -> Plan[None]:
        """A question answered by the model running read-only queries under this key's
        grants: an iterator (``async for`` on :class:`AsyncLLM`) of the events as the server
        streams them — one :class:`AskPlan`, an :class:`AskStep` per query, then an
        :class:`AskAnswer` (its ``steps``: the steps streamed before it) or an :class:`AskError` (a failure after the stream started is an
        event, not an exception; a refusal before it — no provider, an unknown namespace —
        raises as any call). Nothing is saved."""
        opts = RequestOptions(
            "POST", "/ask", json=_ask_body(query, namespace, helper_prompt, provider, model, max_steps),
            headers={"Accept": "text/event-stream"}, idempotency_key="", max_retries=0,
            timeout=timeout if timeout is not None else httpx.Timeout(ASK_READ_TIMEOUT, connect=10.0),
        )
        stream = yield Open(opts, lines=True)
        decoder = SSEDecoder()
        steps: list[AskStep] = []
        while (line := (yield Read(stream))) is not None:
            sse = decoder.decode(line)
            model_type = _ASK_EVENTS.get(sse.event) if sse is not None else None
            if sse is None or model_type is None:  # a keep-alive, or an event this SDK does not know
                continue
            data = {**(sse.json() if sse.data else {}), "event": sse.event}
            if sse.event == "answer" and not isinstance(data.get("steps"), list):
                data["steps"] = steps  # the stream's answer counts the steps; give them, as autorag does
            event = model_type.model_validate(data)
            if isinstance(event, AskStep):
                steps.append(event)
            yield Emit(event)
            if isinstance(event, (AskAnswer, AskError)):
                yield Close(stream)
                return
        raise APIConnectionError("the ask stream ended without an answer or error event")

    @endpoint
    def autorag(
        self,
        query: str,
        *,
        namespace: str | None = None,
        helper_prompt: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        max_steps: int | None = None,
        timeout: Timeout = None,
    ) -> Plan[AskAnswer]:
        """``ask`` answered at once: the answer, the queries the model ran (``steps``) and
        the trace. A failure raises (502 ``llm_error``/``llm_too_many_steps``…, 504
        ``llm_timeout``, 409 ``llm_not_configured``)."""
        opts = RequestOptions("POST", "/autorag",
                              json=_ask_body(query, namespace, helper_prompt, provider, model, max_steps),
                              idempotency_key="", max_retries=0,
                              timeout=timeout if timeout is not None else ASK_READ_TIMEOUT)
        return AskAnswer.model_validate((yield Send(opts)).json())


class LLM(LLMAPI, SyncResource):
    """``client.llm``: providers and model features."""


class AsyncLLM(LLMAPI, AsyncResource):
    """``client.llm`` of :class:`~runyard.AsyncClient` (coroutines)."""

"""Language-model providers and model calls.

A provider is an OpenAI-compatible endpoint (base URL under the outbound-host policy,
an API key held encrypted with the secrets cipher and never returned, a default model,
a timeout and a retry count). Admins manage them; at most one is the workspace default.
``RUNYARD_LLM_BASE_URL`` / ``_API_KEY`` / ``_MODEL`` describe one more, named ``env``,
used when the workspace has no default of its own.

Every model feature calls ``complete_json`` (or ``chat``) with the caller's principal
and the optional ``provider``/``model`` of the request: the provider is resolved, its URL
checked again, the call made (retries, backoff, timeout: runyard.llm), its tokens metered
into usage (``llm_tokens``) and a trace record returned with the answer — the messages
sent, the answer, the tokens and the time taken. A failure is a ``ModelCallFailed``
(502 ``llm_error`` / ``llm_invalid_response``, 504 ``llm_timeout``): nothing the feature
would have saved is saved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import MultiFernet

from runyard.ids import new_id
from runyard.llm.client import ChatClient, ChatResult, LLMError, LLMTimeout, parse_json_answer
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, DomainError, NotFound, ValidationFailed
from runyard.services.outbound import OutboundPolicy
from runyard.services.pagination import Page
from runyard.services.secrets import mask
from runyard.services.usage import UsageRecorder
from runyard.store.db import Database
from runyard.store.tables_llm import llm_providers
from runyard.timeutil import rfc3339, utcnow

MANAGE_PROVIDERS = Permission("admin", "manage language-model providers", unrestricted=True)
KINDS = ("openai-compatible",)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ENV_NAME = "env"
MAX_PROVIDERS = 100
CONFIGURE_HINT = ("configure one: an admin creates a provider with POST /api/v1/llm/providers "
                  '{"name", "base_url", "api_key", "default_model", "default": true}, or the server is started with '
                  "RUNYARD_LLM_BASE_URL, RUNYARD_LLM_API_KEY and RUNYARD_LLM_MODEL (see docs/llm.md)")


class LLMNotConfigured(DomainError):
    status = 409
    code = "llm_not_configured"


class ModelCallFailed(DomainError):
    status = 502
    code = "llm_error"


@dataclass(frozen=True)
class Provider:
    """A provider ready to call (its key decrypted)."""

    id: str
    name: str
    base_url: str
    api_key: str | None
    default_model: str
    timeout_s: float
    max_retries: int
    source: str  # "api" | "environment"


@dataclass
class ModelAnswer:
    result: ChatResult
    trace: dict[str, Any]
    parsed: Any = None


def provider_view(row: Any) -> dict[str, Any]:
    return {"object": "llm_provider", "id": row.id, "name": row.name, "kind": row.kind, "base_url": row.base_url,
            "has_api_key": row.api_key_encrypted is not None, "masked_api_key": row.masked_api_key,
            "default_model": row.default_model, "timeout_s": row.timeout_s, "max_retries": row.max_retries,
            "default": bool(row.is_default), "source": "api",
            "created_at": rfc3339(row.created_at), "updated_at": rfc3339(row.updated_at)}


class LLMService:
    def __init__(self, db: Database, cipher: MultiFernet, usage: UsageRecorder, outbound: OutboundPolicy, *,
                 env_provider: Provider | None = None,
                 client_factory: Callable[[Provider], ChatClient] | None = None) -> None:
        self.db = db
        self.cipher = cipher
        self.usage = usage
        self.outbound = outbound
        self.env_provider = env_provider
        self.client_factory = client_factory or (lambda p: ChatClient(
            p.base_url, api_key=p.api_key, model=p.default_model, timeout_s=p.timeout_s, max_retries=p.max_retries))

    # -- providers ---------------------------------------------------------------------------
    def _env_view(self) -> dict[str, Any] | None:
        p = self.env_provider
        if p is None:
            return None
        return {"object": "llm_provider", "id": ENV_NAME, "name": ENV_NAME, "kind": "openai-compatible",
                "base_url": p.base_url, "has_api_key": p.api_key is not None,
                "masked_api_key": mask(p.api_key) if p.api_key else None, "default_model": p.default_model,
                "timeout_s": p.timeout_s, "max_retries": p.max_retries, "default": False, "source": "environment",
                "created_at": None, "updated_at": None}

    def _row(self, conn: sa.Connection, workspace_id: str, ref: str) -> Any:
        column = llm_providers.c.id if ref.startswith("llm_") else llm_providers.c.name
        row = conn.execute(sa.select(llm_providers).where(llm_providers.c.workspace_id == workspace_id,
                                                          column == ref)).first()
        if row is None:
            raise NotFound(f"language-model provider {ref!r} not found", code="llm_provider_not_found",
                           details={"provider": ref})
        return row

    @staticmethod
    def _check_fields(*, name: str | None = None, kind: str | None = None, default_model: str | None = None,
                      timeout_s: float | None = None, max_retries: int | None = None) -> None:
        if name is not None and (not NAME_RE.match(name) or name == ENV_NAME or name.startswith("llm_")):
            raise ValidationFailed("name: lower-case letters, digits, - and _ (max 64), not starting with llm_ "
                                   f"and not {ENV_NAME!r} (the environment's provider)", details={"field": "name"})
        if kind is not None and kind not in KINDS:
            raise ValidationFailed(f"kind: one of {', '.join(KINDS)}", details={"field": "kind"})
        if default_model is not None and not default_model.strip():
            raise ValidationFailed("default_model: a model name is required", details={"field": "default_model"})
        if timeout_s is not None and not 0 < timeout_s <= 600:
            raise ValidationFailed("timeout_s: more than 0 and at most 600", details={"field": "timeout_s"})
        if max_retries is not None and not 0 <= max_retries <= 10:
            raise ValidationFailed("max_retries: 0 to 10", details={"field": "max_retries"})

    def _key_fields(self, api_key: str | None) -> dict[str, Any]:
        if not api_key:
            return {"api_key_encrypted": None, "masked_api_key": None}
        return {"api_key_encrypted": self.cipher.encrypt(api_key.encode()).decode(), "masked_api_key": mask(api_key)}

    def create(self, principal: Principal, *, name: str, base_url: str, kind: str = "openai-compatible",
               api_key: str | None = None, default_model: str, timeout_s: float = 60.0, max_retries: int = 2,
               default: bool | None = None) -> dict[str, Any]:
        MANAGE_PROVIDERS.check(principal)
        self._check_fields(name=name, kind=kind, default_model=default_model, timeout_s=timeout_s,
                           max_retries=max_retries)
        url = self.outbound.check(base_url)
        now = utcnow()
        ws = principal.workspace_id
        with self.db.write() as conn:
            if conn.execute(sa.select(llm_providers.c.id).where(llm_providers.c.workspace_id == ws,
                                                                llm_providers.c.name == name)).first():
                raise Conflict(f"language-model provider {name!r} already exists", code="llm_provider_exists",
                               details={"name": name})
            count = conn.execute(sa.select(sa.func.count()).select_from(llm_providers)
                                 .where(llm_providers.c.workspace_id == ws)).scalar_one()
            if count >= MAX_PROVIDERS:
                raise ValidationFailed(f"a workspace has at most {MAX_PROVIDERS} providers", details={"field": "name"})
            has_default = conn.execute(sa.select(llm_providers.c.id).where(
                llm_providers.c.workspace_id == ws, llm_providers.c.is_default.is_(True))).first() is not None
            # The first provider of a workspace becomes its default unless told otherwise.
            is_default = default if default is not None else not has_default
            if is_default:
                conn.execute(llm_providers.update().where(llm_providers.c.workspace_id == ws)
                             .values(is_default=False))
            provider_id = new_id("llm")
            conn.execute(llm_providers.insert().values(
                id=provider_id, workspace_id=ws, name=name, kind=kind, base_url=url, default_model=default_model.strip(),
                timeout_s=float(timeout_s), max_retries=int(max_retries), is_default=is_default,
                created_by=principal.user_id, created_at=now, updated_at=now, **self._key_fields(api_key)))
            return provider_view(self._row(conn, ws, provider_id))

    def list(self, principal: Principal) -> Page:
        MANAGE_PROVIDERS.check(principal)
        with self.db.read() as conn:
            rows = conn.execute(sa.select(llm_providers).where(
                llm_providers.c.workspace_id == principal.workspace_id).order_by(llm_providers.c.name)).all()
        items = [provider_view(r) for r in rows]
        env = self._env_view()
        if env is not None:
            env["default"] = not any(i["default"] for i in items)
            items.append(env)
        return Page(items, None, len(items))

    def get(self, principal: Principal, ref: str) -> dict[str, Any]:
        MANAGE_PROVIDERS.check(principal)
        if ref == ENV_NAME and self.env_provider is not None:
            return self.list(principal).items[-1]
        with self.db.read() as conn:
            return provider_view(self._row(conn, principal.workspace_id, ref))

    def update(self, principal: Principal, ref: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes``: the fields sent (``api_key`` null or "" removes the key)."""
        MANAGE_PROVIDERS.check(principal)
        if ref == ENV_NAME:
            raise ValidationFailed("the environment's provider is changed by its RUNYARD_LLM_* variables",
                                   code="llm_provider_read_only")
        self._check_fields(**{k: v for k, v in changes.items()
                              if k in ("name", "kind", "default_model", "timeout_s", "max_retries") and v is not None})
        values: dict[str, Any] = {}
        for key in ("name", "kind", "timeout_s", "max_retries"):
            if changes.get(key) is not None:
                values[key] = changes[key]
        if changes.get("default_model") is not None:
            values["default_model"] = changes["default_model"].strip()
        if changes.get("base_url") is not None:
            values["base_url"] = self.outbound.check(changes["base_url"])
        if "api_key" in changes:
            values.update(self._key_fields(changes["api_key"]))
        ws = principal.workspace_id
        with self.db.write() as conn:
            row = self._row(conn, ws, ref)
            if "name" in values and values["name"] != row.name and conn.execute(sa.select(llm_providers.c.id).where(
                    llm_providers.c.workspace_id == ws, llm_providers.c.name == values["name"])).first():
                raise Conflict(f"language-model provider {values['name']!r} already exists",
                               code="llm_provider_exists", details={"name": values["name"]})
            if changes.get("default") is not None:
                if changes["default"]:
                    conn.execute(llm_providers.update().where(llm_providers.c.workspace_id == ws)
                                 .values(is_default=False))
                values["is_default"] = bool(changes["default"])
            if values:
                conn.execute(llm_providers.update().where(llm_providers.c.id == row.id)
                             .values(updated_at=utcnow(), **values))
            return provider_view(self._row(conn, ws, row.id))

    def delete(self, principal: Principal, ref: str) -> None:
        MANAGE_PROVIDERS.check(principal)
        if ref == ENV_NAME:
            raise ValidationFailed("the environment's provider is removed by unsetting RUNYARD_LLM_BASE_URL",
                                   code="llm_provider_read_only")
        with self.db.write() as conn:
            row = self._row(conn, principal.workspace_id, ref)
            conn.execute(llm_providers.delete().where(llm_providers.c.id == row.id))

    # -- resolving -----------------------------------------------------------------------------
    def _provider(self, row: Any) -> Provider:
        key = self.cipher.decrypt(row.api_key_encrypted.encode()).decode() if row.api_key_encrypted else None
        return Provider(row.id, row.name, row.base_url, key, row.default_model, row.timeout_s, row.max_retries, "api")

    def resolve(self, principal: Principal, provider: str | None = None, *, required: bool = True) -> Provider | None:
        """The provider a call uses: the one named, else the workspace default, else the
        environment's. None (``required`` False) or 409 ``llm_not_configured`` when there is none."""
        if provider == ENV_NAME and self.env_provider is not None:
            return self.env_provider
        with self.db.read() as conn:
            if provider:
                return self._provider(self._row(conn, principal.workspace_id, provider))
            row = conn.execute(sa.select(llm_providers).where(
                llm_providers.c.workspace_id == principal.workspace_id, llm_providers.c.is_default.is_(True))).first()
        if row is not None:
            return self._provider(row)
        if self.env_provider is not None:
            return self.env_provider
        if not required:
            return None
        raise LLMNotConfigured(f"no language-model provider is configured for this workspace; {CONFIGURE_HINT}")

    def configured(self, principal: Principal) -> bool:
        return self.resolve(principal, required=False) is not None

    # -- calls -------------------------------------------------------------------------------------
    def chat(self, principal: Principal, purpose: str, messages: list[dict[str, Any]], *,
             provider: str | Provider | None = None, model: str | None = None, json_answer: bool = False,
             tools: list[dict[str, Any]] | None = None, ref_id: str | None = None) -> ModelAnswer:
        """One model call for ``purpose`` (a feature's name), metered and traced. With
        ``json_answer`` the answer must be a JSON object (``ModelAnswer.parsed``)."""
        chosen = provider if isinstance(provider, Provider) else self.resolve(principal, provider)
        assert chosen is not None
        self.outbound.check(chosen.base_url)  # again: what a name resolves to can change
        model_name = (model or chosen.default_model or "").strip()
        client = self.client_factory(chosen)
        details: dict[str, Any] = {"provider": chosen.name, "model": model_name, "purpose": purpose}
        try:
            result = client.chat(messages, model=model_name, tools=tools, temperature=0,
                                 response_format={"type": "json_object"} if json_answer and not tools else None)
        except LLMError as exc:
            details.update(attempts=exc.attempts, provider_status=exc.status)
            status = 504 if isinstance(exc, LLMTimeout) else 502
            raise ModelCallFailed(f"the model call ({purpose}) to provider {chosen.name!r} failed: {exc.message}",
                                  code=exc.code, status=status, details=details) from None
        if result.usage.total_tokens:
            self.usage.record(principal.workspace_id, "llm_tokens", result.usage.total_tokens,
                              ref_id=ref_id or chosen.id, user_id=principal.user_id)
        trace = {"object": "llm_call", "purpose": purpose, "provider": chosen.name, "model": result.model,
                 "messages": messages, "response": result.content,
                 "tool_calls": [c.to_dict() for c in result.tool_calls], "usage": result.usage.to_dict(),
                 "ms": result.elapsed_ms, "attempts": result.attempts}
        answer = ModelAnswer(result, trace)
        if json_answer and not tools:
            try:
                answer.parsed = parse_json_answer(result.content)
            except LLMError as exc:
                details.update(attempts=result.attempts, response=(result.content or "")[:500])
                raise ModelCallFailed(f"the model's answer ({purpose}) could not be used: {exc.message}",
                                      code=exc.code, details=details) from None
        return answer

    def complete_json(self, principal: Principal, purpose: str, messages: list[dict[str, Any]], *,
                      provider: str | Provider | None = None, model: str | None = None) -> ModelAnswer:
        return self.chat(principal, purpose, messages, provider=provider, model=model, json_answer=True)


def env_provider(base_url: str | None, api_key: str | None, model: str | None, timeout_s: float) -> Provider | None:
    """The provider ``RUNYARD_LLM_*`` describe, or None when no base URL is set."""
    if not base_url:
        return None
    return Provider(ENV_NAME, ENV_NAME, base_url.rstrip("/"), api_key, model or "", timeout_s, 2, "environment")

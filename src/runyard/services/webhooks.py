"""Webhooks: a secret URL, ``POST /hooks/{token}``, that starts a run of a tool.

The token (``rwh_…``, 256 random bits) is shown once, when the hook is made; only its
SHA-256 is stored, and a request is looked up by it before its body is read. A hook may
require an HMAC signature (``runyard.triggers.webhook``; the shared secret is stored
encrypted with the platform's cipher, like secrets) and has its own rate limit (a token
bucket per hook, kept by each node). Who sees and manages hooks is as for schedules
(``services.schedules``): admins all of the workspace's, others their own user's; a
restricted key none. A hook runs as the user who made it, re-authorised at each request:
a user deleted, or without the member role any more, disables the hook (``disabled_reason``)
and its URL answers 404 like one that never existed.

A signature with a timestamp (the ``stripe`` format, or ``timestamp_header``) is remembered
(``webhook_deliveries``: the SHA-256 of its timestamp and HMAC) until its window closes, and
the same signature again is refused: 409 ``webhook_replayed``, no run. A request refused after
that (bad inputs, a failing mapping) forgets it again, so the sender may retry. Without a
timestamp a replay cannot be told from a resend.

A hook's optional ``mapping`` (a JSON object with ``${{ }}`` expressions reading
``inputs.body``, ``inputs.headers``, ``inputs.query``: ``runyard.triggers.webhook``) renders the
request into the run's inputs; without one the body is the inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

import sqlalchemy as sa
from cryptography.fernet import MultiFernet

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import (
    Conflict,
    DomainError,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from runyard.services.pagination import Page, paginate
from runyard.services.trigger_targets import Targets, owned_row, parse_target, target_of
from runyard.services.users import UserService
from runyard.store.db import Database
from runyard.store.tables_triggers import webhooks
from runyard.store.tables_workflows import webhook_deliveries
from runyard.timeutil import rfc3339, utcnow
from runyard.triggers.webhook import (
    MappingError,
    RateLimiter,
    SignatureConfig,
    SignatureError,
    VerifiedSignature,
    check_mapping,
    hash_hook_token,
    looks_like_hook_token,
    new_hook_token,
    render_mapping,
    verify_signature,
)

READ_WEBHOOKS = Permission("viewer", "read webhooks", unrestricted=True)
WRITE_WEBHOOKS = Permission("member", "manage webhooks", unrestricted=True)
DEFAULT_RATE_PER_S = 10.0
DEFAULT_BURST = 20
MAX_RATE_PER_S = 10_000.0
MAX_BURST = 100_000
MAX_SECRET_CHARS = 1024
# A signature is remembered this much past its window: nodes' clocks may disagree a little, and
# a node whose clock runs ahead must not forget it while one running behind still accepts it.
REPLAY_MARGIN_S = 60.0
# Never shown to a mapping (the hook's signature header neither).
_HIDDEN_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key")
_SIGNATURE_KEYS = {"header", "algorithm", "format", "timestamp_header", "tolerance_s", "secret"}


def webhook_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    signature = m["signature"]
    return {
        "id": m["id"], "object": "webhook", **target_of(row).view(), "user_id": m["user_id"],
        "signature": None if not signature else {k: v for k, v in signature.items() if k != "secret"},
        "mapping": m["mapping"], "rate_per_s": m["rate_per_s"], "burst": m["burst"], "enabled": m["enabled"],
        "disabled_reason": m["disabled_reason"], "created_at": rfc3339(m["created_at"]),
        "updated_at": rfc3339(m["updated_at"]), "last_used_at": rfc3339(m["last_used_at"]),
    }


class WebhookService:
    def __init__(self, db: Database, targets: Targets, users: UserService, cipher: MultiFernet) -> None:
        self.db = db
        self.targets = targets
        self.users = users
        self.cipher = cipher
        self.limiter = RateLimiter(DEFAULT_RATE_PER_S, DEFAULT_BURST)

    # -- validation ----------------------------------------------------------------------
    def _signature(self, spec: Any) -> dict[str, Any] | None:
        if spec is None:
            return None
        if not isinstance(spec, dict) or set(spec) - _SIGNATURE_KEYS:
            raise ValidationFailed(f"signature takes {', '.join(sorted(_SIGNATURE_KEYS))}",
                                   code="invalid_signature_config", details={"field": "signature"})
        secret = spec.get("secret")
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_CHARS:
            raise ValidationFailed(f"signature.secret must be 1-{MAX_SECRET_CHARS} characters",
                                   code="invalid_signature_config", details={"field": "signature.secret"})
        fields = {k: v for k, v in spec.items() if k != "secret" and v is not None}
        try:
            config = SignatureConfig(**fields)
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"invalid signature settings: {exc}", code="invalid_signature_config",
                                   details={"field": "signature"}) from exc
        return {"header": config.header, "algorithm": config.algorithm, "format": config.format.value,
                "timestamp_header": config.timestamp_header, "tolerance_s": config.tolerance_s,
                "secret": self.cipher.encrypt(secret.encode()).decode("ascii")}

    @staticmethod
    def _mapping(spec: Any) -> dict[str, Any] | None:
        if spec is None:
            return None
        try:
            return check_mapping(spec)
        except MappingError as exc:
            raise ValidationFailed(exc.message, code=exc.code,
                                   details={"field": exc.field, "column": exc.column}) from exc

    @staticmethod
    def _rate(rate_per_s: Any, burst: Any) -> tuple[float, int]:
        if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, int | float) \
                or not 0 < rate_per_s <= MAX_RATE_PER_S:
            raise ValidationFailed(f"rate_per_s must be in (0, {MAX_RATE_PER_S:g}]", details={"field": "rate_per_s"})
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
            raise ValidationFailed(f"burst must be an integer in 1..{MAX_BURST}", details={"field": "burst"})
        return float(rate_per_s), burst

    # -- on behalf of a principal ----------------------------------------------------------
    def _visible_row(self, conn: sa.Connection, principal: Principal, hook_id: str) -> Any:
        return owned_row(conn, webhooks, principal, hook_id, what="webhook", code="webhook_not_found", detail="webhook_id")

    def create(self, principal: Principal, *, tool: Any = None, workflow: Any = None, signature: Any = None,
               mapping: Any = None, rate_per_s: Any = DEFAULT_RATE_PER_S, burst: Any = DEFAULT_BURST,
               enabled: bool = True) -> tuple[dict[str, Any], str]:
        """The hook and its token (the only time the token is seen)."""
        WRITE_WEBHOOKS.check(principal)
        if principal.user_id is None:
            raise ValidationFailed("this key belongs to no user; a webhook runs as a user")
        target = parse_target(tool, workflow)
        rate, cap = self._rate(rate_per_s, burst)
        stored_signature = self._signature(signature)
        stored_mapping = self._mapping(mapping)
        self.targets.check(principal, target)
        token = new_hook_token()
        now = utcnow()
        hook_id = new_id("whk")
        with self.db.write() as conn:
            conn.execute(webhooks.insert().values(
                id=hook_id, workspace_id=principal.workspace_id, user_id=principal.user_id, target_kind=target.kind,
                target_name=target.name, token_hash=hash_hook_token(token), signature=stored_signature, mapping=stored_mapping, rate_per_s=rate,
                burst=cap, enabled=bool(enabled), disabled_reason=None, created_at=now, updated_at=now,
                last_used_at=None))
            row = conn.execute(sa.select(webhooks).where(webhooks.c.id == hook_id)).one()
        return webhook_view(row), token

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        READ_WEBHOOKS.check(principal)
        query = sa.select(webhooks).where(webhooks.c.workspace_id == principal.workspace_id)
        if principal.role != "admin":
            query = query.where(webhooks.c.user_id == (principal.user_id or ""))
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=webhooks.c.id, id_col=webhooks.c.id,
                                        descending=True, cursor=cursor, limit=limit, include_total=include_total)
        return Page([webhook_view(r) for r in rows], nxt, total)

    def get(self, principal: Principal, hook_id: str) -> dict[str, Any]:
        READ_WEBHOOKS.check(principal)
        with self.db.read() as conn:
            return webhook_view(self._visible_row(conn, principal, hook_id))

    def update(self, principal: Principal, hook_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the fields given; ``signature: null`` removes the signature check, ``mapping:
        null`` the mapping (the body is the inputs again)."""
        WRITE_WEBHOOKS.check(principal)
        with self.db.read() as conn:
            row = self._visible_row(conn, principal, hook_id)
        values: dict[str, Any] = {}
        if changes.get("tool") is not None or changes.get("workflow") is not None:
            target = parse_target(changes.get("tool"), changes.get("workflow"))
            self.targets.check(principal, target)
            values.update(target_kind=target.kind, target_name=target.name)
        if "signature" in changes:
            values["signature"] = self._signature(changes["signature"])
        if "mapping" in changes:
            values["mapping"] = self._mapping(changes["mapping"])
        rate = changes.get("rate_per_s") if changes.get("rate_per_s") is not None else row.rate_per_s
        cap = changes.get("burst") if changes.get("burst") is not None else row.burst
        values["rate_per_s"], values["burst"] = self._rate(rate, cap)
        if changes.get("enabled") is not None:
            values["enabled"] = bool(changes["enabled"])
            values["disabled_reason"] = None
        values["updated_at"] = utcnow()
        with self.db.write() as conn:
            conn.execute(webhooks.update().where(webhooks.c.id == row.id).values(**values))
            row = conn.execute(sa.select(webhooks).where(webhooks.c.id == row.id)).one()
        self.limiter.forget(row.id)  # a new limit starts with a full bucket
        return webhook_view(row)

    def delete(self, principal: Principal, hook_id: str) -> None:
        WRITE_WEBHOOKS.check(principal)
        with self.db.write() as conn:
            row = self._visible_row(conn, principal, hook_id)
            conn.execute(webhooks.delete().where(webhooks.c.id == row.id))
            conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == row.id))
        self.limiter.forget(row.id)

    # -- a request to a hook's URL -----------------------------------------------------------
    def admit(self, token: str) -> tuple[Any, Principal]:
        """The hook ``token`` opens and who it runs as, before its request's body is read:
        404 ``not_found`` (nothing more) for an unknown or disabled hook, 429 over its rate."""
        unknown = NotFound("not found", code="not_found")
        if not looks_like_hook_token(token):
            raise unknown
        with self.db.read() as conn:
            row = conn.execute(sa.select(webhooks).where(webhooks.c.token_hash == hash_hook_token(token))).first()
            if row is None or not row.enabled:
                raise unknown
        owner = self.users.acting_as(row.workspace_id, row.user_id, on_behalf_of=row.id,
                                     whose="the webhook's owner")
        if isinstance(owner, str):
            with self.db.write() as conn:
                conn.execute(webhooks.update().where(webhooks.c.id == row.id)
                             .values(enabled=False, disabled_reason=owner, updated_at=utcnow()))
            raise unknown
        decision = self.limiter.check(row.id, rate_per_s=row.rate_per_s, burst=row.burst)
        if not decision.allowed:
            raise RateLimited(f"this webhook takes at most {row.rate_per_s:g} requests per second "
                              f"(bursts of {row.burst})", retry_after=decision.retry_after_s)
        return row, owner

    def verify(self, row: Any, headers: Mapping[str, str], body: bytes) -> VerifiedSignature | None:
        """401 ``missing_signature`` / ``invalid_signature`` / ``signature_expired`` unless the
        body carries a valid signature (when the hook requires one: what it signed, else None)."""
        signature = row.signature
        if not signature:
            return None
        config = SignatureConfig(header=signature["header"], algorithm=signature["algorithm"],
                                 format=signature["format"], timestamp_header=signature.get("timestamp_header"),
                                 tolerance_s=signature.get("tolerance_s", 300.0))
        secret = self.cipher.decrypt(signature["secret"].encode("ascii"))
        try:
            return verify_signature(config, secret, headers, body)
        except SignatureError as exc:
            raise Unauthenticated(exc.message, code=exc.code) from exc

    def claim(self, row: Any, verified: VerifiedSignature | None) -> str | None:
        """Remember a timestamped signature until its window closes (the key remembered, or
        None when there is nothing to remember); 409 ``webhook_replayed`` when it was already
        accepted. Expired records of the hook are swept on the way."""
        key = None if verified is None else verified.replay_key
        if key is None or verified is None or verified.timestamp is None:
            return None
        tolerance = float((row.signature or {}).get("tolerance_s", 300.0))
        expires = datetime.fromtimestamp(verified.timestamp + tolerance + REPLAY_MARGIN_S, tz=UTC)
        now = utcnow()
        try:
            with self.db.write() as conn:
                conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == row.id,
                                                               webhook_deliveries.c.expires_at < now))
                conn.execute(webhook_deliveries.insert().values(webhook_id=row.id, digest=key, expires_at=expires))
        except sa.exc.IntegrityError as exc:
            raise Conflict("this signature was already accepted: a replayed delivery starts no run (sign each "
                           "delivery with a fresh timestamp)", code="webhook_replayed") from exc
        return key

    def release(self, row: Any, key: str | None) -> None:
        """Forget a claimed signature whose request started no run (the sender may retry it)."""
        if key is None:
            return
        with self.db.write() as conn:
            conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == row.id,
                                                           webhook_deliveries.c.digest == key))

    @staticmethod
    def request_headers(row: Any, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """A request's headers as a mapping reads them: lower-case names, repeated ones joined
        with ``", "``; without credentials (``Authorization``, ``Cookie``…) or the hook's
        signature header."""
        hidden = set(_HIDDEN_HEADERS)
        if row.signature:
            hidden.add(str(row.signature["header"]).lower())
        out: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            if key not in hidden:
                out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def inputs(self, row: Any, body: Any, headers: Iterable[tuple[str, str]],
               query: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """The run's inputs: the hook's mapping rendered over the request (422 ``mapping_failed``
        when an expression fails), or without a mapping the body, which must be an object.
        ``body`` is the parsed JSON or the form fields (None: no body); a repeated query
        parameter reads as its last value."""
        mapping = row.mapping
        if mapping is None:
            if body is None:
                return {}
            if not isinstance(body, dict):
                raise ValidationFailed("the body must be a JSON object: it becomes the run's inputs",
                                       code="invalid_inputs", details={"field": "inputs"})
            return body
        request = {"body": {} if body is None else body, "headers": self.request_headers(row, headers),
                   "query": dict(query)}
        try:
            rendered = render_mapping(mapping, request)
        except MappingError as exc:
            raise DomainError(exc.message, code="mapping_failed", status=422,
                              details={"field": exc.field, "column": exc.column}) from exc
        return rendered

    def deliver(self, row: Any, principal: Principal, inputs: dict[str, Any],
                files: dict[str, tuple[str, BinaryIO]] | None = None) -> dict[str, Any]:
        """Start the hook's run with ``inputs`` (and ``files`` as its input files)."""
        run = self.targets.start(principal, target_of(row), inputs=inputs, trigger="webhook", source=row.id,
                                 files=files)
        with self.db.write() as conn:
            conn.execute(webhooks.update().where(webhooks.c.id == row.id).values(last_used_at=utcnow()))
        return run

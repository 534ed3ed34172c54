"""Webhooks: the URL secret, HMAC signature checks and a per-hook rate limit.

A hook's URL is ``/hooks/{token}`` where ``token`` comes from :func:`new_hook_token` — 256 random
bits, never the hook's id (ids are guessable). Only :func:`hash_hook_token` of it is stored; a
fast hash is enough because the token has full entropy (nothing to brute-force), and it keeps the
lookup an indexed equality. Check the token (:func:`looks_like_hook_token`, then the hash lookup)
before reading the request body.

Signatures (optional per hook) are HMACs over the raw body with a shared secret:

- ``prefixed``: ``X-Hub-Signature-256: sha256=<hex>`` (GitHub; ``sha1=`` with ``sha1``);
- ``hex``: the bare hex digest in the configured header;
- ``stripe``: ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` over ``"<t>." + body``.

With ``timestamp_header`` set (or the ``stripe`` format), the signed message is
``"<timestamp>." + body`` and a timestamp further than ``tolerance_s`` from now (either way) is
``signature_expired``: a captured request cannot be replayed after the window. Within the
window, :func:`verify_signature` returns a :class:`VerifiedSignature` whose ``replay_key`` (the
SHA-256 of the timestamp and the HMAC that matched, so independent of how the header was
spelt) the server records until ``expires_at``, refusing the same key again. Without a
timestamp there is no window, and a replay cannot be told from a resend.
Comparisons are constant-time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runyard.workflows.expressions import (
    Expr,
    ExpressionError,
    Limits,
    Name,
    Template,
    compile_value,
    find_templates,
    parse,
    parse_template,
)

__all__ = [
    "MAPPING_SOURCES",
    "MappingError",
    "RateDecision",
    "RateLimiter",
    "SignatureConfig",
    "SignatureError",
    "SignatureFormat",
    "VerifiedSignature",
    "hash_hook_token",
    "looks_like_hook_token",
    "check_mapping",
    "new_hook_token",
    "render_mapping",
    "sign",
    "token_matches",
    "verify_signature",
]

TOKEN_PREFIX = "rwh_"  # recognisable by secret scanners and in logs
_TOKEN_RE = re.compile(r"^rwh_[A-Za-z0-9_-]{43}$")
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_MAX_HEADER_VALUE = 4096  # a signature header is small; anything longer is junk
_DIGEST_HEX_LEN = {"sha256": 64, "sha1": 40}


# -- the URL secret ---------------------------------------------------------------------------


def new_hook_token() -> str:
    """A new URL secret: ``rwh_`` + 43 URL-safe characters (32 random bytes)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_hook_token(token: str) -> bool:
    """Cheap shape check, so junk URLs are refused without a database lookup."""
    return isinstance(token, str) and _TOKEN_RE.match(token) is not None


def hash_hook_token(token: str) -> str:
    """What to store (and look the hook up by): the SHA-256 hex of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_hook_token(token), stored_hash)


# -- signatures -------------------------------------------------------------------------------


class SignatureError(Exception):
    """``code`` is one of ``missing_signature``, ``invalid_signature``, ``signature_expired``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SignatureFormat(enum.StrEnum):
    PREFIXED = "prefixed"  # sha256=<hex>
    HEX = "hex"  # <hex>
    STRIPE = "stripe"  # t=<ts>,v1=<hex>


@dataclass(frozen=True)
class SignatureConfig:
    header: str = "X-Hub-Signature-256"
    algorithm: str = "sha256"
    format: SignatureFormat = SignatureFormat.PREFIXED
    timestamp_header: str | None = None
    tolerance_s: float = 300.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", SignatureFormat(self.format))
        if self.algorithm not in _DIGEST_HEX_LEN:
            raise ValueError(f"algorithm must be one of {sorted(_DIGEST_HEX_LEN)}")
        for name in (self.header, self.timestamp_header):
            if name is not None and not _HEADER_NAME_RE.match(name):
                raise ValueError(f"invalid header name {name!r}")
        if not 0 < self.tolerance_s <= 86400:
            raise ValueError("tolerance_s must be in (0, 86400]")

    @property
    def timestamped(self) -> bool:
        return self.format is SignatureFormat.STRIPE or self.timestamp_header is not None


@dataclass(frozen=True)
class VerifiedSignature:
    """What a valid signature signed: its ``timestamp`` (Unix seconds, or None without one)
    and the hex HMAC that matched (lower case)."""

    timestamp: int | None
    digest: str

    @property
    def replay_key(self) -> str | None:
        """SHA-256 hex identifying the signed message within its window; None without a timestamp
        (nothing bounds how long it would have to be remembered)."""
        if self.timestamp is None:
            return None
        return hashlib.sha256(f"{self.timestamp}.{self.digest}".encode("ascii")).hexdigest()

    def expires_at(self, tolerance_s: float) -> float | None:
        """Unix seconds after which the signature is refused as expired anyway."""
        return None if self.timestamp is None else self.timestamp + tolerance_s


Secret = str | bytes


def _secrets(secret: Secret | Sequence[Secret]) -> list[bytes]:
    # several secrets: verification during a secret rotation accepts the old and the new one
    items = [secret] if isinstance(secret, str | bytes) else list(secret)
    out = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in items]
    if not out or any(not s for s in out):
        raise ValueError("a signing secret must not be empty")
    return out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header names are not
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                value = candidate
                break
    if value is None:
        return None
    if len(value) > _MAX_HEADER_VALUE:
        raise SignatureError("invalid_signature", "signature header too long")
    return value.strip()


def _digest(config: SignatureConfig, key: bytes, timestamp: str | None, body: bytes) -> str:
    message = body if timestamp is None else timestamp.encode("ascii") + b"." + body
    return hmac.new(key, message, config.algorithm).hexdigest()


def sign(
    config: SignatureConfig, secret: Secret, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The headers a sender attaches (for tests, docs and clients of our own hooks)."""
    key = _secrets(secret)[0]
    if config.timestamped and timestamp is None:
        timestamp = int(time.time())
    ts = None if timestamp is None or not config.timestamped else str(int(timestamp))
    digest = _digest(config, key, ts, body)
    if config.format is SignatureFormat.STRIPE:
        return {config.header: f"t={ts},v1={digest}"}
    value = f"{config.algorithm}={digest}" if config.format is SignatureFormat.PREFIXED else digest
    headers = {config.header: value}
    if config.timestamp_header is not None and ts is not None:
        headers[config.timestamp_header] = ts
    return headers


def _parse_stripe(value: str, config: SignatureConfig) -> tuple[str, list[str]]:
    timestamp: str | None = None
    candidates: list[str] = []
    for item in value.split(","):
        name, sep, val = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamp = val
        elif name == "v1":
            candidates.append(val)
    if timestamp is None or not candidates:
        raise SignatureError("invalid_signature", f"{config.header} must carry t= and v1=")
    return timestamp, candidates[:8]  # a few (rotation), not an unbounded loop of HMACs


def _check_hex(candidate: str, config: SignatureConfig) -> str:
    candidate = candidate.lower()
    if len(candidate) != _DIGEST_HEX_LEN[config.algorithm] or any(c not in "0123456789abcdef" for c in candidate):
        raise SignatureError("invalid_signature", "signature is not a hex digest of the expected length")
    return candidate


def verify_signature(
    config: SignatureConfig,
    secret: Secret | Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> VerifiedSignature:
    """What ``body``'s valid, fresh signature signed; raise :class:`SignatureError` otherwise.
    ``now`` is Unix seconds (injectable for tests)."""
    keys = _secrets(secret)
    value = _header(headers, config.header)
    if not value:
        raise SignatureError("missing_signature", f"missing {config.header} header")
    timestamp: str | None = None
    if config.format is SignatureFormat.STRIPE:
        timestamp, candidates = _parse_stripe(value, config)
    elif config.format is SignatureFormat.PREFIXED:
        algo, sep, digest = value.partition("=")
        if not sep or algo.strip().lower() != config.algorithm:
            raise SignatureError("invalid_signature", f"{config.header} must look like {config.algorithm}=<hex>")
        candidates = [digest.strip()]
    else:
        candidates = [value]
    if config.timestamp_header is not None and config.format is not SignatureFormat.STRIPE:
        timestamp = _header(headers, config.timestamp_header)
        if not timestamp:
            raise SignatureError("missing_signature", f"missing {config.timestamp_header} header")
    if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureError("invalid_signature", "the signature timestamp must be Unix seconds")
    checked = [_check_hex(c, config) for c in candidates]
    matched = False
    signed = ""
    for key in keys:
        expected = _digest(config, key, timestamp, body)
        for candidate in checked:
            # no early exit: the time taken does not depend on which one matched
            same = hmac.compare_digest(expected, candidate)
            matched |= same
            signed = expected if same else signed
    if not matched:
        raise SignatureError("invalid_signature", "signature does not match")
    if timestamp is not None:
        # checked after the HMAC, so "expired" is only ever said about a genuine request
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > config.tolerance_s:
            raise SignatureError("signature_expired", f"signature timestamp outside the {config.tolerance_s:g} s window")
    return VerifiedSignature(None if timestamp is None else int(timestamp), signed)


# -- payload mapping --------------------------------------------------------------------------
#
# A hook's ``mapping`` is a JSON object whose strings may hold ``${{ … }}`` expressions of the
# workflow expression language (runyard.workflows.expressions). They read the request as
# ``inputs``: ``inputs.body`` (the parsed JSON body or the form fields), ``inputs.headers``
# (lower-case names) and ``inputs.query``. The rendered object is the run's inputs.

MAPPING_SOURCES = ("body", "headers", "query")
MAX_MAPPING_BYTES = 65_536
# A hook renders one mapping per request: tighter than a workflow step's bounds.
MAPPING_LIMITS = Limits(max_string=1_000_000, max_items=100_000, max_nodes=20_000)


class MappingError(ValueError):
    """``code`` is ``invalid_mapping`` (when saved) or ``mapping_failed`` (when rendered);
    ``field`` is where in the mapping (``mapping.a.b``), ``column`` 1-based in that string."""

    def __init__(self, code: str, message: str, field: str = "mapping", column: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.column = column


def _field(path: tuple[str | int, ...]) -> str:
    return "mapping" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _templates(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    # (path, string) for every string holding an expression; iterative, depth-bounded by the JSON parser
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if "${{" in item:
                yield where, item
        elif isinstance(item, dict):
            stack.extend(((*where, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*where, i), v) for i, v in enumerate(item))


def _root_pos(expr: Expr, root: str) -> int:
    """Where (0-based, in the expression) the first reference to ``root`` starts."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name) and node.name == root:
            return node.pos
        stack.extend(reversed(node.children()))
    return expr.pos


def check_mapping(mapping: Any) -> dict[str, Any]:
    """``mapping`` when it is a JSON object whose every expression parses and reads only
    ``inputs.body``, ``inputs.headers`` or ``inputs.query`` (or ``inputs`` whole); else
    :class:`MappingError` ``invalid_mapping``."""
    if not isinstance(mapping, dict):
        raise MappingError("invalid_mapping", "mapping must be a JSON object: it renders into the run's inputs")
    try:
        size = len(json.dumps(mapping, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        raise MappingError("invalid_mapping", f"mapping is not JSON: {exc}") from exc
    if size > MAX_MAPPING_BYTES:
        raise MappingError("invalid_mapping", f"mapping is longer than {MAX_MAPPING_BYTES} bytes as JSON")
    for path, text in _templates(mapping):
        try:
            parse_template(text)  # the whole string: an unclosed ``${{`` too
            for start, _end, inner in find_templates(text):
                expr = parse(inner)
                for root, keys in sorted(expr.references(), key=repr):
                    if root != "inputs" or (keys and keys[0] not in MAPPING_SOURCES):
                        where = root + "".join(f".{k}" for k in keys[:1])
                        raise MappingError(
                            "invalid_mapping", f"{_field(path)}: {where} is not part of a webhook request (read "
                            f"{', '.join('inputs.' + s for s in MAPPING_SOURCES)})", _field(path),
                            start + len("${{") + _root_pos(expr, root) + 1)
        except ExpressionError as exc:
            raise MappingError("invalid_mapping", f"{_field(path)}: {exc.reason}", _field(path), exc.column) from exc
    return mapping


def render_mapping(mapping: dict[str, Any], request: dict[str, Any],
                   limits: Limits = MAPPING_LIMITS) -> dict[str, Any]:
    """The run's inputs: ``mapping`` rendered against ``{"inputs": request}`` (``request`` has
    ``body``, ``headers`` and ``query``). :class:`MappingError` ``mapping_failed`` when an
    expression fails (a missing field without ``default()``, a type error, a limit)."""
    context = {"inputs": request}

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, str):
            if "${{" not in value:
                return value
            try:
                template = compile_value(value)
                return template.render(context, limits) if isinstance(template, Template) else template
            except ExpressionError as exc:
                raise MappingError("mapping_failed", f"{_field(path)}: {exc.reason}", _field(path),
                                   exc.column) from exc
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    return walk(mapping, ())


# -- rate limit -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float  # 0 when allowed; else when one token will be there
    remaining: float  # tokens left after this request


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token buckets, one per key (a hook id): ``rate_per_s`` tokens refill each second up to
    ``burst``; each request takes one. ``clock`` is monotonic seconds (inject a fake in tests).
    At most ``max_keys`` buckets are kept (least recently used dropped; a dropped bucket comes
    back full, which only ever errs towards allowing). Thread-safe."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def check(
        self, key: str, *, cost: float = 1.0, rate_per_s: float | None = None, burst: float | None = None
    ) -> RateDecision:
        """Take ``cost`` tokens if there are enough. ``rate_per_s``/``burst`` override the
        defaults for this key (a hook's own limit)."""
        rate = self.rate_per_s if rate_per_s is None else float(rate_per_s)
        cap = self.burst if burst is None else float(burst)
        if rate <= 0 or cap < cost:
            raise ValueError("rate must be > 0 and burst >= cost")
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(cap, now)
                while len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)  # a clock going back refills nothing
                bucket.tokens = min(cap, bucket.tokens + elapsed * rate)
                bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return RateDecision(True, 0.0, bucket.tokens)
            return RateDecision(False, (cost - bucket.tokens) / rate, bucket.tokens)

    def allow(self, key: str, **kwargs: float) -> bool:
        return self.check(key, **kwargs).allowed

    def forget(self, key: str) -> None:
        """Drop a key's bucket (the hook was deleted)."""
        with self._lock:
            self._buckets.pop(key, None)

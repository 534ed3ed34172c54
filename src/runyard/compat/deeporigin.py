"""A runyard key in the form DeepOrigin's published client (``deeporigin``) needs.

That client decodes its token as a JWT before every request (to read its expiry), so a bare
runyard key (``ry_…``) fails in the client before anything is sent. ``token_for(key)``
wraps the key in a JWT: the key rides in the ``runyard_key`` claim, the token is signed
(HS256) with the key itself, and ``exp`` is the key's expiry when given (else the end of
year 9999). The server (``/compat/deeporigin``) reads the key back with ``key_of`` and then
authenticates it as any key, its own expiry and role included: the JWT adds no rights, and
it is exactly as secret as the key it carries.

    from deeporigin.platform.client import DeepOriginClient
    from runyard.compat.deeporigin import token_for

    client = DeepOriginClient(base_url="http://runyard:8000/compat/deeporigin",
                              token=token_for("ry_..."), org_key="default", project_id="demo")

Standard library only, so it needs nothing beyond runyard's light client install.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime

CLAIM = "runyard_key"
NEVER = 253402300799  # 9999-12-31T23:59:59Z: a key without expiry
MAX_TOKEN_CHARS = 4096  # a wrapped runyard key is a few hundred characters

__all__ = ["CLAIM", "key_of", "token_for"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: str, signing_input: str) -> str:
    return _b64(hmac.new(key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest())


def token_for(key: str, *, expires_at: datetime | None = None) -> str:
    """The DeepOrigin-client token for runyard ``key`` (expiring with it, when given)."""
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a runyard API key (ry_...)")
    exp = NEVER
    if expires_at is not None:
        aware = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        exp = int(aware.timestamp())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps({"iss": "runyard", CLAIM: key, "exp": exp}, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_sign(key, signing_input)}"


def key_of(token: str) -> str | None:
    """The runyard key a token made by ``token_for`` carries; None when ``token`` is not
    such a token (a bare key, another JWT, a tampered one: its signature must be the key's)."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    header_b64, payload_b64, signature = token.split(".")
    try:
        header = json.loads(_unb64(header_b64))
        payload = json.loads(_unb64(payload_b64))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(payload, dict):
        return None
    key = payload.get(CLAIM)
    if not isinstance(key, str) or not key:
        return None
    if not hmac.compare_digest(_sign(key, f"{header_b64}.{payload_b64}"), signature):
        return None
    return key

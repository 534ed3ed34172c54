"""Signed URLs of a run's live connection (``POST /runs/{id}/connect``).

A URL is good for ``ttl_s`` seconds to open the WebSocket of one run. Its ``sig`` binds
the run, the workspace, the token that asked for it and the expiry with an HMAC under a
key of its own, derived from the node's signing key (so it can never pass for an upload
part's or a query cursor's signature, nor theirs for it). Opening it checks the MAC, the
expiry, and then the token again, read afresh: a revoked or expired token, or a user
deleted since, opens nothing. The connection acts as that token: a viewer's URL watches,
only a member's may answer a run waiting for input.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from runyard.services.access import Principal
from runyard.services.errors import PermissionDenied
from runyard.services.runs import RunService
from runyard.services.tokens import TokenService
from runyard.store.tables import tokens

LIVE_TTL_S = 60
_SIG_RE = re.compile(r"^([A-Za-z0-9_]{1,64})\.([0-9]{1,12})\.([0-9a-f]{64})$")
_KEY_LABEL = b"runyard run live connection v1"


def live_path(run_id: str) -> str:
    return f"/api/v1/runs/{quote(run_id, safe='')}/live"


class LiveLinks:
    def __init__(self, runs_service: RunService, tokens_service: TokenService, signing_key: bytes, *,
                 ttl_s: int = LIVE_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self.runs = runs_service
        self.tokens = tokens_service
        self._key = hmac.new(signing_key, _KEY_LABEL, hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self.clock = clock

    def _mac(self, run_id: str, workspace_id: str, token_id: str, expires: int) -> str:
        message = f"{run_id}\n{workspace_id}\n{token_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def connect(self, principal: Principal, run_id: str, base_url: str) -> dict[str, Any]:
        """A URL (``ws://`` or ``wss://`` after ``base_url``'s scheme) to watch the run live,
        good for ``ttl_s`` seconds; any key that sees the run may ask for one."""
        row = self.runs.visible_row(principal, run_id)
        expires = int(self.clock()) + self.ttl_s
        sig = f"{principal.token_id}.{expires}.{self._mac(row.id, row.workspace_id, principal.token_id, expires)}"
        scheme, sep, rest = base_url.rstrip("/").partition("://")
        ws_base = ("wss" if scheme == "https" else "ws") + sep + rest
        return {"object": "run_connection", "run_id": row.id, "url": f"{ws_base}{live_path(row.id)}?sig={sig}",
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")}

    def open(self, run_id: str, sig: str | None) -> Principal:
        """The principal a live URL acts as; 403 ``invalid_signature`` (tampered, made for
        another run, malformed), ``signature_expired``, or 401 when its token is revoked."""
        match = _SIG_RE.match(sig or "")
        if match is None:
            raise PermissionDenied("this URL is not signed", code="invalid_signature")
        token_id, expires, mac = match.group(1), int(match.group(2)), match.group(3)
        # The MAC first (over the workspace the token belongs to, revoked or not), so a
        # forged URL learns nothing about a token; then the expiry; then the token itself.
        workspace_id = self._token_workspace(token_id)
        if workspace_id is None or not hmac.compare_digest(mac, self._mac(run_id, workspace_id, token_id, expires)):
            raise PermissionDenied("the signature does not match this run", code="invalid_signature")
        if expires <= self.clock():
            raise PermissionDenied("the signed URL has expired; ask POST /runs/{id}/connect for another",
                                   code="signature_expired")
        principal = self.tokens.principal_of_token(workspace_id, token_id)  # revoked, expired: 401
        self.runs.visible_row(principal, run_id)  # the run may have been deleted since
        return principal

    def _token_workspace(self, token_id: str) -> str | None:
        with self.tokens.db.read() as conn:
            return conn.execute(sa.select(tokens.c.workspace_id).where(tokens.c.id == token_id)).scalar()

"""Secrets: encrypted at rest (Fernet), never returned, only a masked hint is shown."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from runyard.ids import new_id
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, ValidationFailed
from runyard.services.pagination import Page, paginate
from runyard.services.tools import declared_secrets
from runyard.store.db import Database
from runyard.store.tables import secrets
from runyard.timeutil import rfc3339, utcnow

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_BYTES = 64 * 1024
SET_SECRETS = Permission("member", "set secrets")
DELETE_SECRETS = Permission("member", "delete secrets")


def load_cipher(data_dir: Path, configured: str | None) -> MultiFernet:
    """Keys from ``RUNYARD_SECRET_KEY`` (comma-separated, newest first, for rotation) or a
    key file created with mode 0600 in the data dir on first start."""
    if configured:
        keys = [k.strip() for k in configured.split(",") if k.strip()]
    else:
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        keys = [path.read_text().strip()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def mask(value: str) -> str:
    if len(value) >= 12:
        return f"{value[:2]}…{value[-4:]}"
    return "•" * 8


def secret_view(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "name": m["name"], "object": "secret", "display_name": m["display_name"], "description": m["description"],
        "category": m["category"], "masked_value": m["masked_value"],
        "created_at": rfc3339(m["created_at"]), "updated_at": rfc3339(m["updated_at"]),
    }


class SecretService:
    def __init__(self, db: Database, cipher: MultiFernet) -> None:
        self.db = db
        self.cipher = cipher

    # -- scoping ---------------------------------------------------------------------------
    # A token restricted to some tools reaches only the secrets those tools declare (in
    # their latest versions): it can set, list and delete those, and any other secret is
    # hidden from it (404, left out of lists), whether or not it exists.
    def reachable(self, principal: Principal) -> frozenset[str] | None:
        """The secret names ``principal`` may use; None when it is not restricted."""
        if not principal.tools:
            return None
        with self.db.read() as conn:
            return frozenset(declared_secrets(conn, principal.workspace_id, principal.tools))

    def _require_reachable(self, principal: Principal, name: str) -> None:
        reach = self.reachable(principal)
        if reach is not None and name not in reach:
            raise NotFound(f"secret {name!r} not found among the secrets this token's tools declare",
                           code="secret_not_found", details={"name": name})

    def put(self, principal: Principal, name: str, *, value: str, display_name: str | None = None,
            description: str | None = None, category: str | None = None, force: bool = False) -> dict[str, Any]:
        SET_SECRETS.check(principal)
        if not NAME_RE.match(name):
            raise ValidationFailed("secret name must match [A-Za-z_][A-Za-z0-9_]* (max 128)",
                                   code="invalid_secret_name", details={"field": "name"})
        self._require_reachable(principal, name)
        workspace_id = principal.workspace_id
        if not isinstance(value, str) or value == "":
            raise ValidationFailed("value must be a non-empty string", details={"field": "value"})
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise ValidationFailed(f"value exceeds {MAX_VALUE_BYTES} bytes", details={"field": "value"})
        now = utcnow()
        fields = {
            "display_name": display_name, "description": description, "category": category,
            "ciphertext": self.cipher.encrypt(value.encode()), "masked_value": mask(value), "updated_at": now,
        }
        with self.db.write() as conn:
            existing = conn.execute(sa.select(secrets.c.id).where(
                secrets.c.workspace_id == workspace_id, secrets.c.name == name)).first()
            if existing and not force:
                raise Conflict(f"secret {name!r} already exists; pass force=true to overwrite",
                               code="secret_exists", details={"name": name})
            if existing:
                conn.execute(secrets.update().where(secrets.c.id == existing.id).values(**fields))
            else:
                conn.execute(secrets.insert().values(id=new_id("sec"), workspace_id=workspace_id, name=name,
                                                     created_at=now, **fields))
            row = conn.execute(sa.select(secrets).where(
                secrets.c.workspace_id == workspace_id, secrets.c.name == name)).one()
        return secret_view(row)

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False) -> Page:
        query = sa.select(secrets).where(secrets.c.workspace_id == principal.workspace_id)
        reach = self.reachable(principal)
        if reach is not None:
            query = query.where(secrets.c.name.in_(sorted(reach)))
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=secrets.c.name, id_col=secrets.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
        return Page([secret_view(r) for r in rows], nxt, total)

    def delete(self, principal: Principal, name: str) -> None:
        DELETE_SECRETS.check(principal)
        self._require_reachable(principal, name)
        with self.db.write() as conn:
            result = conn.execute(secrets.delete().where(
                secrets.c.workspace_id == principal.workspace_id, secrets.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"secret {name!r} not found", code="secret_not_found")

    def existing_names(self, workspace_id: str, names: list[str]) -> set[str]:
        if not names:
            return set()
        with self.db.read() as conn:
            rows = conn.execute(sa.select(secrets.c.name).where(
                secrets.c.workspace_id == workspace_id, secrets.c.name.in_(names))).all()
        return {r.name for r in rows}

    def reveal(self, workspace_id: str, names: list[str]) -> dict[str, str]:
        """Decrypted values, for the worker only (to inject into a run's environment)."""
        if not names:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(sa.select(secrets.c.name, secrets.c.ciphertext).where(
                secrets.c.workspace_id == workspace_id, secrets.c.name.in_(names))).all()
        out: dict[str, str] = {}
        for row in rows:
            try:
                out[row.name] = self.cipher.decrypt(row.ciphertext).decode()
            except InvalidToken as exc:
                raise RuntimeError(f"secret {row.name!r} cannot be decrypted with the configured key") from exc
        return out

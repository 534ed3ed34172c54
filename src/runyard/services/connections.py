"""Connections: named settings for an external system (postgres, mysql, http, openapi,
odata, s3, mcp), checked for real and read for their metadata (services.connection_checks).

Admins (keys restricted to nothing) create, change, delete, verify and read metadata;
any unrestricted key lists and reads them. Secret parts (passwords, tokens, keys, header
values) are never stored in ``config``: each is either a reference to a runyard secret
(``{"secret": "NAME"}``) or a value given once, stored encrypted as a secret the connection
owns (``connection_<name>_<field>``, deleted with it). Views show ``{"secret": "NAME",
"set": true|false}`` in their place, never a value.

The worker reads a connection with its secret values (``settings_for_run``) for a run of a
tool that declares it; nothing else reveals them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from runyard.ids import new_id
from runyard.services import connection_checks
from runyard.services.access import Permission, Principal
from runyard.services.errors import Conflict, NotFound, ValidationFailed
from runyard.services.outbound import OutboundPolicy
from runyard.services.pagination import Page, paginate
from runyard.services.secrets import NAME_RE as SECRET_NAME_RE
from runyard.services.secrets import SecretService
from runyard.store.db import Database
from runyard.store.tables_connections import connections
from runyard.timeutil import rfc3339, utcnow

MANAGE_CONNECTIONS = Permission("admin", "manage connections", unrestricted=True)
READ_CONNECTIONS = Permission("viewer", "read connections", unrestricted=True)
TYPES = ("postgres", "mysql", "http", "openapi", "odata", "s3", "mcp")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_CONNECTIONS = 500
MAX_DECLARED = 50  # connections one tool may declare
STR_MAX = 2000
AUTH_TYPES = ("none", "bearer", "basic", "header")
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")


def _field(path: str) -> str:
    return f"config.{path}"


def _str(cfg: dict[str, Any], key: str, *, required: bool = False, default: str | None = None,
         prefix: str = "") -> str | None:
    value = cfg.get(key, default)
    if value is None:
        if required:
            raise ValidationFailed(f"{_field(prefix + key)} is required", details={"field": _field(prefix + key)})
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > STR_MAX or "\x00" in value:
        raise ValidationFailed(f"{_field(prefix + key)} must be a non-empty string (max {STR_MAX})",
                               details={"field": _field(prefix + key)})
    return value.strip()


def _port(cfg: dict[str, Any], default: int) -> int:
    value = cfg.get("port", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationFailed("config.port must be a port number (1-65535)", details={"field": "config.port"})
    return value


def _timeout(cfg: dict[str, Any]) -> float:
    value = cfg.get("timeout_s", 10)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 60:
        raise ValidationFailed("config.timeout_s: more than 0 and at most 60", details={"field": "config.timeout_s"})
    return float(value)


def _is_secret_part(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, dict) and set(value) <= {"secret", "set"}
                                      and "secret" in value)


class ConnectionService:
    def __init__(self, db: Database, secrets: SecretService, outbound: OutboundPolicy) -> None:
        self.db = db
        self.secrets = secrets
        self.outbound = outbound
        # Lists a stdio MCP server's tools by starting its command confined (services.mcp_stdio).
        self.stdio_tools: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None

    # -- shapes ------------------------------------------------------------------------------
    # Saved settings pass the outbound-host policy, except that a name which does not resolve
    # (yet, or only elsewhere) is accepted: verify reports it unreachable. Every check
    # resolves again and connects to the address it checked.
    def _check_host(self, host: str, port: int) -> None:
        try:
            self.outbound.addresses_for(host, port, field="config.host")
        except ValidationFailed as exc:
            if exc.code != "outbound_host_unresolvable":
                raise

    def _check_url(self, url: str, *, field: str = "config.base_url") -> str:
        try:
            return self.outbound.check(url, field=field)
        except ValidationFailed as exc:
            if exc.code != "outbound_host_unresolvable":
                raise
            return url.strip().rstrip("/")

    def _normalise(self, kind: str, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(plain settings, secret parts by path) of a config, validated for its type. A
        secret part is still as given: a value or ``{"secret": NAME}``."""
        if not isinstance(cfg, dict):
            raise ValidationFailed("config must be an object", details={"field": "config"})
        out: dict[str, Any] = {}
        secret_parts: dict[str, Any] = {}
        known: set[str] = {"timeout_s"}

        def secret(key: str, source: dict[str, Any], path: str, *, required: bool = False) -> None:
            value = source.get(key)
            if value is None:
                if required:
                    raise ValidationFailed(f"{_field(path)} is required", details={"field": _field(path)})
                return
            if not _is_secret_part(value) or (isinstance(value, str) and (not value or len(value) > 64 * 1024)):
                raise ValidationFailed(f'{_field(path)}: a value (stored as a secret) or {{"secret": "NAME"}}',
                                       details={"field": _field(path)})
            secret_parts[path] = value

        if kind in ("postgres", "mysql"):
            known |= {"host", "port", "database", "user", "password", "sslmode"}
            out["host"] = _str(cfg, "host", required=True)
            out["port"] = _port(cfg, 5432 if kind == "postgres" else 3306)
            out["database"] = _str(cfg, "database", required=True)
            out["user"] = _str(cfg, "user", required=True)
            modes = PG_SSLMODES if kind == "postgres" else ("disable", "require")
            out["sslmode"] = _str(cfg, "sslmode", default="prefer" if kind == "postgres" else "disable")
            if out["sslmode"] not in modes:
                raise ValidationFailed(f"config.sslmode: one of {', '.join(modes)}", details={"field": "config.sslmode"})
            secret("password", cfg, "password")
            self._check_host(out["host"], out["port"])
        elif kind in ("http", "openapi", "odata"):
            known |= {"base_url", "auth", "health_path", "openapi_url"}
            out["base_url"] = self._check_url(_str(cfg, "base_url", required=True) or "")
            for key in ("health_path", "openapi_url") if kind != "odata" else ():
                if cfg.get(key) is not None:
                    out[key] = _str(cfg, key)
                    if out[key].startswith(("http://", "https://")):
                        self._check_url(out[key], field=_field(key))
            auth = cfg.get("auth") or {"type": "none"}
            if not isinstance(auth, dict) or auth.get("type", "none") not in AUTH_TYPES:
                raise ValidationFailed(f"config.auth.type: one of {', '.join(AUTH_TYPES)}",
                                       details={"field": "config.auth.type"})
            kind_of_auth = auth.get("type", "none")
            allowed = {"none": {"type"}, "bearer": {"type", "token"}, "basic": {"type", "username", "password"},
                       "header": {"type", "name", "value"}}[kind_of_auth]
            if set(auth) - allowed:
                raise ValidationFailed(f"config.auth: unknown fields {sorted(set(auth) - allowed)} for "
                                       f"{kind_of_auth} auth", details={"field": "config.auth"})
            out["auth"] = {"type": kind_of_auth}
            if kind_of_auth == "bearer":
                secret("token", auth, "auth.token", required=True)
            elif kind_of_auth == "basic":
                out["auth"]["username"] = _str(auth, "username", required=True, prefix="auth.")
                secret("password", auth, "auth.password", required=True)
            elif kind_of_auth == "header":
                out["auth"]["name"] = _str(auth, "name", required=True, prefix="auth.")
                if not HEADER_RE.match(out["auth"]["name"]):
                    raise ValidationFailed("config.auth.name: a header name", details={"field": "config.auth.name"})
                secret("value", auth, "auth.value", required=True)
        elif kind == "s3":
            known |= {"endpoint_url", "bucket", "region", "access_key_id", "secret_access_key"}
            if cfg.get("endpoint_url") is not None:
                out["endpoint_url"] = self._check_url(_str(cfg, "endpoint_url") or "",
                                                                     field="config.endpoint_url")
            out["bucket"] = _str(cfg, "bucket", required=True)
            if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", out["bucket"] or ""):
                raise ValidationFailed("config.bucket: an S3 bucket name", details={"field": "config.bucket"})
            out["region"] = _str(cfg, "region", default="us-east-1")
            out["access_key_id"] = _str(cfg, "access_key_id", required=True)
            secret("secret_access_key", cfg, "secret_access_key", required=True)
        elif kind == "mcp":
            known |= {"url", "transport", "headers", "command", "call_timeout_s", "env", "network",
                      "idle_timeout_s", "memory_mb"}
            if cfg.get("call_timeout_s") is not None:  # services.mcp_client: a tools/call's limit
                value = cfg["call_timeout_s"]
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
                    raise ValidationFailed("config.call_timeout_s: seconds, more than 0 and at most 3600",
                                           details={"field": "config.call_timeout_s"})
                out["call_timeout_s"] = float(value)
            if (cfg.get("url") is None) == (cfg.get("command") is None):
                raise ValidationFailed("config: give either url (an HTTP MCP server) or command (a stdio one)",
                                       details={"field": "config.url"})
            if cfg.get("url") is not None and any(
                    cfg.get(k) is not None for k in ("env", "network", "idle_timeout_s", "memory_mb")):
                raise ValidationFailed("config: env, network, idle_timeout_s and memory_mb are a stdio server's "
                                       "(command)", details={"field": "config"})
            if cfg.get("url") is not None:
                out["url"] = self._check_url(_str(cfg, "url") or "", field="config.url")
                out["transport"] = _str(cfg, "transport", default="streamable_http")
                if out["transport"] not in ("streamable_http", "sse"):
                    raise ValidationFailed("config.transport: streamable_http or sse",
                                           details={"field": "config.transport"})
                headers = cfg.get("headers") or {}
                if not isinstance(headers, dict) or not all(isinstance(k, str) and HEADER_RE.match(k) for k in headers):
                    raise ValidationFailed("config.headers: an object of header names", details={"field": "config.headers"})
                for name in headers:
                    secret(name, headers, f"headers.{name}", required=True)
            else:
                command = cfg["command"]
                if (not isinstance(command, list) or not command or len(command) > 100
                        or not all(isinstance(a, str) and a and "\x00" not in a for a in command)):
                    raise ValidationFailed("config.command: a list of non-empty strings (the program and its arguments)",
                                           details={"field": "config.command"})
                out["command"] = list(command)
                # services.mcp_stdio: how its confined process runs
                env = cfg.get("env") or {}
                if not isinstance(env, dict) or not all(
                        isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", k) for k in env):
                    raise ValidationFailed("config.env: an object of environment variable names",
                                           details={"field": "config.env"})
                for name in env:
                    secret(name, env, f"env.{name}", required=True)
                if not isinstance(cfg.get("network", False), bool):
                    raise ValidationFailed("config.network: true or false", details={"field": "config.network"})
                out["network"] = bool(cfg.get("network", False))
                for name, low, high in (("idle_timeout_s", 1, 86400), ("memory_mb", 64, 65536)):
                    value = cfg.get(name)
                    if value is None:
                        continue
                    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                        raise ValidationFailed(f"config.{name}: a number from {low} to {high}",
                                               details={"field": f"config.{name}"})
                    out[name] = value
        else:
            raise ValidationFailed(f"type: one of {', '.join(TYPES)}", details={"field": "type"})
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValidationFailed(f"config: unknown fields for a {kind} connection: {', '.join(unknown)}",
                                   details={"field": "config", "unknown": unknown})
        if "timeout_s" in cfg:
            out["timeout_s"] = _timeout(cfg)
        return out, secret_parts

    @staticmethod
    def _place(config: dict[str, Any], path: str, value: Any) -> None:
        head, _, rest = path.partition(".")
        if not rest:
            config[head] = value
        else:
            ConnectionService._place(config.setdefault(head, {}), rest, value)

    @staticmethod
    def _secret_paths(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
        """Secret references in a stored config: path → secret name."""
        out: dict[str, str] = {}
        for key, value in config.items():
            if isinstance(value, dict) and set(value) == {"secret"}:
                out[prefix + key] = value["secret"]
            elif isinstance(value, dict):
                out.update(ConnectionService._secret_paths(value, f"{prefix}{key}."))
        return out

    def _store_secrets(self, principal: Principal, name: str, parts: dict[str, Any], owned: list[str],
                       config: dict[str, Any]) -> list[str]:
        """Put each secret part into ``config`` as a reference; values become owned secrets."""
        owned = list(owned)
        for path, value in parts.items():
            if isinstance(value, dict):
                ref = value["secret"]
                if not isinstance(ref, str) or not SECRET_NAME_RE.match(ref):
                    raise ValidationFailed(f"{_field(path)}.secret: a secret name", details={"field": _field(path)})
                if not self.secrets.existing_names(principal.workspace_id, [ref]):
                    raise ValidationFailed(f"{_field(path)}: secret {ref!r} does not exist (create it with PUT "
                                           "/secrets/{name}, or give the value here)",
                                           code="connection_secret_not_found",
                                           details={"field": _field(path), "secret": ref})
            else:
                ref = re.sub(r"[^A-Za-z0-9_]", "_", f"connection_{name}_{path}")[:128]
                if ref not in owned and self.secrets.existing_names(principal.workspace_id, [ref]):
                    raise Conflict(f"{_field(path)}: a secret named {ref!r} exists and is not this connection's; "
                                   f'give {{"secret": "{ref}"}} to use it', code="secret_exists",
                                   details={"field": _field(path), "secret": ref})
                self.secrets.put(principal, ref, value=value, description=f"{path} of connection {name}",
                                 category="connection", force=True)
                if ref not in owned:
                    owned.append(ref)
            self._place(config, path, {"secret": ref})
        return owned

    def _view(self, row: Any) -> dict[str, Any]:
        m = row._mapping
        refs = self._secret_paths(m["config"])
        present = self.secrets.existing_names(m["workspace_id"], sorted(set(refs.values())))
        config = _copy(m["config"])
        for path, ref in refs.items():
            self._place(config, path, {"secret": ref, "set": ref in present})
        return {"object": "connection", "id": m["id"], "name": m["name"], "type": m["type"], "config": config,
                "status": {"state": m["status_state"], "checked_at": rfc3339(m["checked_at"]),
                           "latency_ms": m["latency_ms"], "error": m["status_error"]},
                "created_by": m["created_by"], "updated_by": m["updated_by"],
                "created_at": rfc3339(m["created_at"]), "updated_at": rfc3339(m["updated_at"])}

    def _row(self, conn: sa.Connection, workspace_id: str, ref: str) -> Any:
        column = connections.c.id if ref.startswith("con_") else connections.c.name
        row = conn.execute(sa.select(connections).where(connections.c.workspace_id == workspace_id,
                                                        column == ref)).first()
        if row is None:
            raise NotFound(f"connection {ref!r} not found", code="connection_not_found", details={"connection": ref})
        return row

    @staticmethod
    def _check_name(name: Any) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("con_"):
            raise ValidationFailed("name: lower-case letters, digits, - and _ (max 64), not starting with con_",
                                   details={"field": "name"})
        return name

    # -- operations ----------------------------------------------------------------------------
    def create(self, principal: Principal, *, name: str, type: str, config: dict[str, Any]) -> dict[str, Any]:
        MANAGE_CONNECTIONS.check(principal)
        self._check_name(name)
        if type not in TYPES:
            raise ValidationFailed(f"type: one of {', '.join(TYPES)}", details={"field": "type"})
        plain, parts = self._normalise(type, config)
        ws = principal.workspace_id
        with self.db.read() as conn:
            if conn.execute(sa.select(connections.c.id).where(connections.c.workspace_id == ws,
                                                              connections.c.name == name)).first():
                raise Conflict(f"connection {name!r} already exists", code="connection_exists", details={"name": name})
            count = conn.execute(sa.select(sa.func.count()).select_from(connections)
                                 .where(connections.c.workspace_id == ws)).scalar_one()
        if count >= MAX_CONNECTIONS:
            raise ValidationFailed(f"a workspace has at most {MAX_CONNECTIONS} connections", details={"field": "name"})
        owned = self._store_secrets(principal, name, parts, [], plain)
        now = utcnow()
        connection_id = new_id("con")
        try:
            with self.db.write() as conn:
                conn.execute(connections.insert().values(
                    id=connection_id, workspace_id=ws, name=name, type=type, config=plain, owned_secrets=owned,
                    status_state="unknown", created_by=principal.user_id, updated_by=principal.user_id,
                    created_at=now, updated_at=now))
                row = self._row(conn, ws, connection_id)
        except sa.exc.IntegrityError:
            raise Conflict(f"connection {name!r} already exists", code="connection_exists",
                           details={"name": name}) from None
        return self._view(row)

    def list(self, principal: Principal, *, cursor: str | None, limit: int, include_total: bool = False,
             type: str | None = None) -> Page:
        READ_CONNECTIONS.check(principal)
        query = sa.select(connections).where(connections.c.workspace_id == principal.workspace_id)
        if type is not None:
            query = query.where(connections.c.type == type)
        with self.db.read() as conn:
            rows, nxt, total = paginate(conn, query, sort_col=connections.c.name, id_col=connections.c.id,
                                        descending=False, cursor=cursor, limit=limit, include_total=include_total)
        return Page([self._view(r) for r in rows], nxt, total)

    def get(self, principal: Principal, ref: str) -> dict[str, Any]:
        READ_CONNECTIONS.check(principal)
        with self.db.read() as conn:
            return self._view(self._row(conn, principal.workspace_id, ref))

    def update(self, principal: Principal, ref: str, *, name: str | None = None,
               config: dict[str, Any] | None = None) -> dict[str, Any]:
        """``config`` is merged over the stored one key by key (a key set to null is removed);
        a secret part given again replaces it. A changed config's status is unknown again."""
        MANAGE_CONNECTIONS.check(principal)
        if name is not None:
            self._check_name(name)
        ws = principal.workspace_id
        with self.db.read() as conn:
            row = self._row(conn, ws, ref)
        values: dict[str, Any] = {"updated_at": utcnow(), "updated_by": principal.user_id}
        if name is not None and name != row.name:
            values["name"] = name
        if config is not None:
            if not isinstance(config, dict):
                raise ValidationFailed("config must be an object", details={"field": "config"})
            merged = _copy(row.config)
            for key, value in config.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            plain, parts = self._normalise(row.type, merged)
            owned = self._store_secrets(principal, row.name, parts, list(row.owned_secrets or []), plain)
            still = set(self._secret_paths(plain).values())
            for gone in [s for s in owned if s not in still]:
                self._drop_secret(principal, gone)
                owned.remove(gone)
            values.update(config=plain, owned_secrets=owned, status_state="unknown", checked_at=None,
                          latency_ms=None, status_error=None,
                          mcp_tools=None)  # another server, perhaps: its tools are listed by a verify
        try:
            with self.db.write() as conn:
                conn.execute(connections.update().where(connections.c.id == row.id).values(**values))
                return self._view(self._row(conn, ws, row.id))
        except sa.exc.IntegrityError:
            raise Conflict(f"connection {name!r} already exists", code="connection_exists",
                           details={"name": name}) from None

    def _drop_secret(self, principal: Principal, name: str) -> None:
        try:
            self.secrets.delete(principal, name)
        except NotFound:
            pass

    def delete(self, principal: Principal, ref: str) -> None:
        MANAGE_CONNECTIONS.check(principal)
        with self.db.write() as conn:
            row = self._row(conn, principal.workspace_id, ref)
            conn.execute(connections.delete().where(connections.c.id == row.id))
        for owned in row.owned_secrets or []:
            self._drop_secret(principal, owned)

    def _settings(self, row: Any) -> dict[str, Any]:
        """The stored config with each secret reference replaced by its value."""
        config = _copy(row.config)
        refs = self._secret_paths(config)
        values = self.secrets.reveal(row.workspace_id, sorted(set(refs.values())))
        for path, ref in refs.items():
            self._place(config, path, values.get(ref))
        return config

    def verify(self, principal: Principal, ref: str) -> dict[str, Any]:
        """A real check (services.connection_checks), its outcome recorded as the status."""
        MANAGE_CONNECTIONS.check(principal)
        with self.db.read() as conn:
            row = self._row(conn, principal.workspace_id, ref)
        result = connection_checks.verify(self.outbound, row.type, self._settings(row), stdio=self.stdio_tools)
        with self.db.write() as conn:
            conn.execute(connections.update().where(connections.c.id == row.id).values(
                status_state="ok" if result.ok else "failed", checked_at=utcnow(), latency_ms=result.latency_ms,
                status_error=result.error, **({"mcp_tools": result.tools} if result.tools is not None else {})))
            return self._view(self._row(conn, principal.workspace_id, row.id))

    def metadata(self, principal: Principal, ref: str) -> dict[str, Any]:
        MANAGE_CONNECTIONS.check(principal)
        with self.db.read() as conn:
            row = self._row(conn, principal.workspace_id, ref)
        found = connection_checks.metadata(self.outbound, row.type, self._settings(row), stdio=self.stdio_tools)
        return {"object": "connection_metadata", "connection": row.id, "name": row.name, "type": row.type,
                "metadata": found}

    # -- runs ----------------------------------------------------------------------------------
    def existing_names(self, workspace_id: str, names: list[str]) -> set[str]:
        if not names:
            return set()
        with self.db.read() as conn:
            rows = conn.execute(sa.select(connections.c.name).where(
                connections.c.workspace_id == workspace_id, connections.c.name.in_(names))).all()
        return {r.name for r in rows}

    def settings_for_run(self, workspace_id: str, names: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Each declared connection's type and settings with secret values, for the worker
        to hand to a run (``context.connection``; a connection that no longer exists is None),
        and those secret values (for the run's log and output redaction)."""
        if not names:
            return {}, []
        with self.db.read() as conn:
            rows = conn.execute(sa.select(connections).where(
                connections.c.workspace_id == workspace_id, connections.c.name.in_(names))).all()
        found: dict[str, Any] = dict.fromkeys(names)
        values: list[str] = []
        for r in rows:
            refs = self._secret_paths(r.config)
            revealed = self.secrets.reveal(r.workspace_id, sorted(set(refs.values())))
            values.extend(revealed.values())
            config = _copy(r.config)
            for path, ref in refs.items():
                self._place(config, path, revealed.get(ref))
            found[r.name] = {"name": r.name, "type": r.type, **config}
        return found, values


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value

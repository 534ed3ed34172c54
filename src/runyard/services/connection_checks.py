"""What a connection's check and metadata actually do, per type, against the real system.

Every network step goes through the outbound-host policy: the host is resolved once,
checked, and the connection made to that address (``OutboundPolicy.pin``; httpx through
``PinnedTransport``, database drivers given the address beside the name). Redirects are
not followed.

A check never raises for the remote system's behaviour; it returns a ``CheckResult``. So
that verify cannot be used to map a network, every way of not reaching the host (refused,
timed out, name not resolving, reset before the protocol spoke) reads the same
``UNREACHABLE`` text with no timing; what the remote server said (wrong password, unknown
database, access denied) is reported only when it was reached.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import httpx
import yaml

from runyard.services.errors import DomainError, ValidationFailed
from runyard.services.outbound import OutboundPolicy, OutboundRefused, PinnedTransport

log = logging.getLogger(__name__)
UNREACHABLE = "unreachable: no connection could be made to the host"
AUTH_FAILED = "authentication failed: the server refused these credentials"
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024  # an OpenAPI or EDMX document
MAX_TABLES = 1000
MAX_COLUMNS = 10_000
MAX_OPERATIONS = 2000
MAX_OBJECTS = 100
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass
class CheckResult:
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    tools: list[dict[str, Any]] | None = None  # an mcp server's tools/list answer


class Unreachable(Exception):
    """The host was not reached (its reason is deliberately not kept)."""


class RemoteFailed(Exception):
    """The host was reached and refused or failed; the message says what it said."""


class ConnectionUnavailable(DomainError):
    status = 502
    code = "connection_unreachable"


class InvalidDocument(ValidationFailed):
    """A metadata document that does not parse: 400 with ``details.where``."""


# -- the shared HTTP client -------------------------------------------------------------
def http_auth_headers(auth: dict[str, Any] | None) -> dict[str, str]:
    if not auth or auth.get("type", "none") == "none":
        return {}
    kind = auth["type"]
    if kind == "bearer":
        return {"Authorization": f"Bearer {auth['token']}"}
    if kind == "basic":
        pair = f"{auth.get('username', '')}:{auth['password']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if kind == "header":
        return {auth["name"]: auth["value"]}
    raise ValidationFailed(f"auth.type: unknown {kind!r}", details={"field": "config.auth.type"})


@contextmanager
def pinned_client(policy: OutboundPolicy, settings: dict[str, Any]) -> Iterator[httpx.Client]:
    timeout = float(settings.get("timeout_s") or 10)
    with httpx.Client(transport=PinnedTransport(policy, field="config.base_url", retries=0),
                      headers=http_auth_headers(settings.get("auth")), follow_redirects=False,
                      timeout=httpx.Timeout(timeout, connect=min(timeout, 10))) as client:
        yield client


def _get(client: httpx.Client, url: str, *, cap: int | None = None) -> tuple[httpx.Response, bytes]:
    """GET ``url``: the response and up to ``cap`` bytes of body (more is an error)."""
    try:
        with client.stream("GET", url) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if cap is not None and len(body) > cap:
                    raise ValidationFailed(f"the document at {url} is larger than {cap} bytes",
                                           code="metadata_too_large", details={"url": url, "limit": cap})
            return response, bytes(body)
    except httpx.TransportError:
        raise Unreachable() from None


def _url(base: str, ref: str | None, default: str) -> str:
    ref = ref or default
    if ref.startswith(("http://", "https://")):
        return ref
    return urljoin(base.rstrip("/") + "/", ref.lstrip("/"))


def _require_ok(response: httpx.Response, url: str) -> None:
    if response.is_redirect:
        raise RemoteFailed(f"the server answered {response.status_code} (a redirect, not followed) for {url}")
    if response.status_code in (401, 403):
        raise RemoteFailed(f"{AUTH_FAILED} ({response.status_code} for {url})")
    if response.status_code >= 400:
        raise RemoteFailed(f"the server answered {response.status_code} for {url}")


# -- checks -----------------------------------------------------------------------------
def verify(policy: OutboundPolicy, kind: str, settings: dict[str, Any], *,
           stdio: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None) -> CheckResult:
    """The connection's check, its outcome recorded by the caller; never raises for what
    the remote side does. ``stdio`` lists a stdio MCP server's tools (services.mcp_stdio:
    its command started confined)."""
    started = time.monotonic()
    try:
        if kind == "mcp" and settings.get("command") and stdio is not None:
            found = stdio(settings)
        else:
            found = VERIFIERS[kind](policy, settings)
    except Unreachable:
        return CheckResult(False, error=UNREACHABLE)
    except OutboundRefused as exc:
        return CheckResult(False, error=f"refused by the outbound-host policy: {exc.message}")
    except DomainError as exc:
        if exc.code == "outbound_host_unresolvable":
            return CheckResult(False, error=UNREACHABLE)
        return CheckResult(False, error=exc.message)
    except RemoteFailed as exc:
        return CheckResult(False, error=str(exc))
    except Exception as exc:  # a driver's surprise is still a failed check, not a failed request
        log.warning("connection check (%s) failed unexpectedly: %s", kind, type(exc).__name__)
        return CheckResult(False, error=f"the check failed: {type(exc).__name__}")
    return CheckResult(True, latency_ms=round((time.monotonic() - started) * 1000, 1),
                       tools=found if kind == "mcp" else None)


def metadata(policy: OutboundPolicy, kind: str, settings: dict[str, Any], *,
             stdio: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """What the connected system holds (capped); 502 ``connection_unreachable`` /
    ``connection_failed`` when it cannot be asked, 400 for a document that does not parse."""
    if kind == "mcp" and settings.get("command") and stdio is not None:
        listed = stdio  # bound for the closure below

        def reader_stdio(_policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
            return _tools_metadata(listed(s))

        reader: Callable[[OutboundPolicy, dict[str, Any]], dict[str, Any]] | None = reader_stdio
    else:
        reader = METADATA.get(kind)
    if reader is None:
        raise ValidationFailed(f"a {kind} connection has no metadata to read", code="metadata_unsupported",
                               details={"type": kind})
    try:
        return reader(policy, settings)
    except Unreachable:
        raise ConnectionUnavailable(UNREACHABLE) from None
    except RemoteFailed as exc:
        raise ConnectionUnavailable(str(exc), code="connection_failed") from None
    except DomainError as exc:
        if exc.code == "outbound_host_unresolvable":
            raise ConnectionUnavailable(UNREACHABLE) from None
        raise
    except Exception as exc:
        log.warning("connection metadata (%s) failed unexpectedly: %s", kind, type(exc).__name__)
        raise ConnectionUnavailable(f"reading the metadata failed: {type(exc).__name__}",
                                    code="connection_failed") from None


# -- postgres ---------------------------------------------------------------------------
@contextmanager
def _postgres(policy: OutboundPolicy, s: dict[str, Any]) -> Iterator[Any]:
    import psycopg

    address = policy.pin(s["host"], int(s["port"]), field="config.host")
    try:
        conn = psycopg.connect(host=s["host"], hostaddr=address, port=int(s["port"]), dbname=s["database"],
                               user=s["user"], password=s.get("password") or None, sslmode=s.get("sslmode", "prefer"),
                               connect_timeout=max(1, int(float(s.get("timeout_s") or 10))), autocommit=True,
                               application_name="runyard-connection-check")
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "authentication failed" in text or "no pg_hba.conf entry" in text or "password" in text:
            raise RemoteFailed(AUTH_FAILED) from None
        if "does not exist" in text:
            raise RemoteFailed(f"the server answered: database or role {s['database']!r}/{s['user']!r} "
                               "does not exist") from None
        raise Unreachable() from None
    try:
        yield conn
    finally:
        conn.close()


def _verify_postgres(policy: OutboundPolicy, s: dict[str, Any]) -> None:
    with _postgres(policy, s) as conn:
        conn.execute("SELECT 1").fetchone()


def _tables(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """information_schema rows (schema, table, column, type, nullable) as nested lists."""
    schemas: dict[str, dict[str, list[dict[str, Any]]]] = {}
    truncated = len(rows) > MAX_COLUMNS
    for schema, table, column, data_type, nullable in rows[:MAX_COLUMNS]:
        tables = schemas.setdefault(str(schema), {})
        if table not in tables and sum(len(t) for t in schemas.values()) >= MAX_TABLES:
            truncated = True
            continue
        tables.setdefault(str(table), []).append(
            {"name": str(column), "type": str(data_type), "nullable": str(nullable).upper() == "YES"})
    return {"schemas": [{"name": schema, "tables": [{"name": t, "columns": cols} for t, cols in tables.items()]}
                        for schema, tables in schemas.items()], "truncated": truncated}


def _metadata_postgres(policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
    with _postgres(policy, s) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%%' "
            "ORDER BY table_schema, table_name, ordinal_position LIMIT %s", (MAX_COLUMNS + 1,)).fetchall()
    return _tables(rows)


# -- mysql / mariadb --------------------------------------------------------------------
@contextmanager
def _mysql(policy: OutboundPolicy, s: dict[str, Any]) -> Iterator[Any]:
    import pymysql

    address = policy.pin(s["host"], int(s["port"]), field="config.host")
    timeout = max(1, int(float(s.get("timeout_s") or 10)))
    ssl = {"check_hostname": False} if s.get("sslmode") == "require" else None
    try:
        conn = pymysql.connect(host=address, port=int(s["port"]), user=s["user"], password=s.get("password") or "",
                               database=s["database"], connect_timeout=timeout, read_timeout=timeout, ssl=ssl)
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code in (1044, 1045, 1698):
            raise RemoteFailed(AUTH_FAILED) from None
        if 1000 <= code < 2000:  # an answer of the server's
            raise RemoteFailed(f"the server answered: {exc.args[1] if len(exc.args) > 1 else code}") from None
        raise Unreachable() from None
    try:
        yield conn
    finally:
        conn.close()


def _verify_mysql(policy: OutboundPolicy, s: dict[str, Any]) -> None:
    with _mysql(policy, s) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def _metadata_mysql(policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
    with _mysql(policy, s) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_schema, table_name, column_name, column_type, is_nullable "
                    "FROM information_schema.columns WHERE table_schema = %s "
                    "ORDER BY table_schema, table_name, ordinal_position LIMIT %s", (s["database"], MAX_COLUMNS + 1))
        rows = list(cur.fetchall())
    return _tables(rows)


# -- http / openapi ---------------------------------------------------------------------
def _verify_http(policy: OutboundPolicy, s: dict[str, Any]) -> None:
    url = _url(s["base_url"], s.get("health_path"), "")
    with pinned_client(policy, s) as client:
        response, _ = _get(client, url, cap=1 << 20)
    if response.status_code >= 500:  # anything else answered: the service is there
        raise RemoteFailed(f"the server answered {response.status_code} for {url}")


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: an alias bomb cannot expand a small document."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError("while composing", None, "aliases are not accepted", event.start_mark)
        return super().compose_node(parent, index)


def _openapi_error(message: str, where: str) -> InvalidDocument:
    return InvalidDocument(f"invalid OpenAPI document at {where}: {message}", code="invalid_openapi",
                           details={"where": where})


def parse_openapi(body: bytes) -> dict[str, Any]:
    """Operations (method, path, operationId, summary, parameters) and schema names of an
    OpenAPI 3 / Swagger 2 document, JSON or YAML; 400 ``invalid_openapi`` with where."""
    text = body.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _openapi_error(exc.msg, f"line {exc.lineno}, column {exc.colno}") from None
    else:
        try:
            doc = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "document"
            raise _openapi_error(str(getattr(exc, "problem", None) or exc), where) from None
    if not isinstance(doc, dict):
        raise _openapi_error("the document is not an object", "$")
    version = doc.get("openapi") or doc.get("swagger")
    if not isinstance(version, str):
        raise _openapi_error("no openapi (or swagger) version field", "$.openapi")
    paths = doc.get("paths", {})
    if not isinstance(paths, dict):
        raise _openapi_error("paths is not an object", "$.paths")
    operations: list[dict[str, Any]] = []
    truncated = False
    for path, item in paths.items():
        if not isinstance(item, dict):
            raise _openapi_error("a path item is not an object", f"$.paths[{path!r}]")
        shared = item.get("parameters", [])
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"$.paths[{path!r}].{method}"
            if not isinstance(op, dict):
                raise _openapi_error("an operation is not an object", where)
            params = op.get("parameters", [])
            if not isinstance(params, list) or not isinstance(shared, list):
                raise _openapi_error("parameters is not a list", f"{where}.parameters")
            parameters = []
            for i, p in enumerate([*shared, *params]):
                if not isinstance(p, dict):
                    raise _openapi_error("a parameter is not an object", f"{where}.parameters[{i}]")
                if "$ref" in p:
                    parameters.append({"ref": str(p["$ref"])})
                    continue
                if "name" not in p or "in" not in p:
                    raise _openapi_error("a parameter needs name and in", f"{where}.parameters[{i}]")
                schema = p.get("schema") if isinstance(p.get("schema"), dict) else {}
                parameters.append({"name": str(p["name"]), "in": str(p["in"]), "required": bool(p.get("required")),
                                   "type": schema.get("type") or p.get("type")})
            if len(operations) >= MAX_OPERATIONS:
                truncated = True
                continue
            operations.append({"method": method.upper(), "path": str(path), "operation_id": op.get("operationId"),
                               "summary": op.get("summary"), "parameters": parameters,
                               "has_request_body": "requestBody" in op})
    components = doc.get("components") if isinstance(doc.get("components"), dict) else {}
    schemas = components.get("schemas") if isinstance(components.get("schemas"), dict) else (
        doc.get("definitions") if isinstance(doc.get("definitions"), dict) else {})
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    return {"openapi_version": version, "title": info.get("title"), "version": info.get("version"),
            "operations": operations, "schemas": sorted(str(k) for k in schemas), "truncated": truncated}


def _metadata_openapi(policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
    url = _url(s["base_url"], s.get("openapi_url"), "openapi.json")
    with pinned_client(policy, s) as client:
        response, body = _get(client, url, cap=MAX_DOCUMENT_BYTES)
    _require_ok(response, url)
    return {"document_url": url, **parse_openapi(body)}


# -- odata ------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_edmx(body: bytes) -> dict[str, Any]:
    """Entity sets and entity types (properties, keys, navigation properties) of an OData
    ``$metadata`` EDMX document (v2 to v4), parsed with defusedxml; 400 ``invalid_edmx``."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as safe_xml
    from defusedxml import DefusedXmlException

    try:
        root = safe_xml.fromstring(body)
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise InvalidDocument(f"invalid EDMX document at line {line}, column {column + 1}: {exc}",
                              code="invalid_edmx", details={"where": f"line {line}, column {column + 1}"}) from None
    except DefusedXmlException as exc:
        raise InvalidDocument(f"invalid EDMX document: {type(exc).__name__} (entities and DTDs are refused)",
                              code="invalid_edmx", details={"where": "document type declaration"}) from None
    if _local(root.tag) != "Edmx":
        raise InvalidDocument(f"invalid EDMX document at the root: <{_local(root.tag)}> where <edmx:Edmx> belongs",
                              code="invalid_edmx", details={"where": "root"})
    types: list[dict[str, Any]] = []
    sets: list[dict[str, Any]] = []
    schemas = [el for el in root.iter() if _local(el.tag) == "Schema"]
    if not schemas:
        raise InvalidDocument("invalid EDMX document at edmx:DataServices: no Schema element", code="invalid_edmx",
                              details={"where": "edmx:DataServices"})
    for schema in schemas:
        namespace = schema.get("Namespace", "")
        for el in schema:
            name = _local(el.tag)
            if name == "EntityType":
                if not el.get("Name"):
                    raise InvalidDocument(f"invalid EDMX document at Schema {namespace!r}: an EntityType has no Name",
                                          code="invalid_edmx", details={"where": f"Schema[{namespace}].EntityType"})
                keys = [ref.get("Name") for key in el if _local(key.tag) == "Key"
                        for ref in key if _local(ref.tag) == "PropertyRef"]
                props = [{"name": p.get("Name"), "type": p.get("Type"),
                          "nullable": (p.get("Nullable") or "true").lower() != "false"}
                         for p in el if _local(p.tag) == "Property"]
                nav = [{"name": n.get("Name"), "type": n.get("Type") or n.get("ToRole"),
                        "relationship": n.get("Relationship")}
                       for n in el if _local(n.tag) == "NavigationProperty"]
                types.append({"name": el.get("Name"), "namespace": namespace, "keys": keys, "properties": props,
                              "navigation_properties": nav})
            elif name == "EntityContainer":
                sets.extend({"name": es.get("Name"), "entity_type": es.get("EntityType")}
                            for es in el if _local(es.tag) == "EntitySet")
    return {"version": root.get("Version"), "entity_sets": sets, "entity_types": types}


def _metadata_odata(policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
    url = _url(s["base_url"], None, "$metadata")
    with pinned_client(policy, s) as client:
        response, body = _get(client, url, cap=MAX_DOCUMENT_BYTES)
    _require_ok(response, url)
    return {"document_url": url, **parse_edmx(body)}


def _verify_odata(policy: OutboundPolicy, s: dict[str, Any]) -> None:
    url = _url(s["base_url"], None, "$metadata")
    with pinned_client(policy, s) as client:
        response, _ = _get(client, url, cap=MAX_DOCUMENT_BYTES)
    _require_ok(response, url)


# -- s3 ---------------------------------------------------------------------------------
def _s3_list(policy: OutboundPolicy, s: dict[str, Any], params: dict[str, str]) -> bytes:
    """A signed ListObjectsV2 of the bucket (path-style), sent through the pinned client."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    region = s.get("region") or "us-east-1"
    endpoint = (s.get("endpoint_url") or f"https://s3.{region}.amazonaws.com").rstrip("/")
    url = f"{endpoint}/{quote(s['bucket'])}?{urlencode(sorted({'list-type': '2', **params}.items()))}"
    request = AWSRequest(method="GET", url=url)
    S3SigV4Auth(Credentials(s.get("access_key_id") or "", s.get("secret_access_key") or ""), "s3",
                region).add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    with pinned_client(policy, {"timeout_s": s.get("timeout_s")}) as client:
        client.headers.update(headers)
        response, body = _get(client, url, cap=MAX_DOCUMENT_BYTES)
    if response.status_code in (401, 403):
        raise RemoteFailed(f"{AUTH_FAILED} (access to bucket {s['bucket']!r} denied)")
    if response.status_code == 404:
        raise RemoteFailed(f"the server answered: bucket {s['bucket']!r} not found")
    _require_ok(response, url)
    return body


def _verify_s3(policy: OutboundPolicy, s: dict[str, Any]) -> None:
    _s3_list(policy, s, {"max-keys": "1"})


def _metadata_s3(policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
    import defusedxml.ElementTree as safe_xml

    root = safe_xml.fromstring(_s3_list(policy, s, {"max-keys": str(MAX_OBJECTS), "delimiter": "/"}))
    objects, prefixes, truncated = [], [], False
    for el in root:
        name = _local(el.tag)
        if name == "Contents":
            fields = {_local(c.tag): c.text for c in el}
            objects.append({"key": fields.get("Key"), "size": int(fields.get("Size") or 0),
                            "last_modified": fields.get("LastModified")})
        elif name == "CommonPrefixes":
            prefixes.extend(c.text for c in el if _local(c.tag) == "Prefix")
        elif name == "IsTruncated":
            truncated = (el.text or "").lower() == "true"
    return {"bucket": s["bucket"], "objects": objects, "prefixes": prefixes, "truncated": truncated}


# -- mcp --------------------------------------------------------------------------------
def _mcp_available() -> bool:
    try:
        import httpx2  # noqa: F401
        import mcp  # noqa: F401
    except ImportError:
        return False
    return True


def _flatten(exc: BaseException) -> list[BaseException]:
    """An exception, the ones grouped in it and the ones it was raised from."""
    out: list[BaseException] = []
    stack = [exc]
    while stack and len(out) < 50:
        e = stack.pop()
        out.append(e)
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        for linked in (e.__cause__, e.__context__):
            if linked is not None and linked not in out:
                stack.append(linked)
    return out


@contextlib.asynccontextmanager
async def mcp_session(policy: OutboundPolicy, s: dict[str, Any],
                      statuses: list[int] | None = None) -> AsyncIterator[Any]:
    """An initialized MCP ``ClientSession`` over streamable HTTP or SSE, through a transport
    pinned to the checked address (the MCP SDK's own client on httpx2). ``statuses``
    collects the HTTP statuses answered (the SDK's errors do not carry them)."""
    import asyncio

    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    seen = statuses if statuses is not None else []

    class AsyncPinned(httpx2.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            host = request.url.host
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            address = await asyncio.to_thread(policy.pin, host, port, field="config.url")
            if address != host:
                request.url = request.url.copy_with(host=address)
                if request.url.scheme == "https":
                    request.extensions = {**request.extensions, "sni_hostname": host}
            response = await super().handle_async_request(request)
            seen.append(response.status_code)
            return response

    timeout = float(s.get("timeout_s") or 10)
    headers = dict(s.get("headers") or {})

    def factory(headers: dict[str, Any] | None = None, timeout: Any = None, auth: Any = None) -> Any:
        return httpx2.AsyncClient(transport=AsyncPinned(retries=0), headers=headers, follow_redirects=False,
                                  timeout=timeout or httpx2.Timeout(10), auth=auth)

    if s.get("transport") == "sse":
        streams = sse_client(s["url"], headers=headers, timeout=timeout, sse_read_timeout=timeout,
                             httpx_client_factory=factory)
        async with streams as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
        return
    async with factory(headers=headers, timeout=httpx2.Timeout(timeout)) as http, \
            streamable_http_client(s["url"], http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def _mcp_tools(policy: OutboundPolicy, s: dict[str, Any]) -> list[dict[str, Any]]:
    """``initialize`` and ``tools/list``."""
    import asyncio

    import httpx2

    timeout = float(s.get("timeout_s") or 10)
    statuses: list[int] = []

    async def listing() -> list[dict[str, Any]]:
        async with mcp_session(policy, s, statuses) as session:
            return [t.model_dump(mode="json", exclude_none=True) for t in (await session.list_tools()).tools]

    try:
        return await asyncio.wait_for(listing(), timeout * 3)
    except Exception as exc:  # what the MCP client raises is wrapped in groups and chains
        causes = _flatten(exc)
        for cause in causes:
            if isinstance(cause, OutboundRefused | ValidationFailed):
                raise cause from None
        refused = [code for code in statuses if code in (401, 403)]
        if refused:
            raise RemoteFailed(f"{AUTH_FAILED} ({refused[0]})") from None
        for cause in causes:
            response = getattr(cause, "response", None)
            status = getattr(response, "status_code", None)
            if isinstance(status, int) and status in (401, 403):
                raise RemoteFailed(f"{AUTH_FAILED} ({status})") from None
            if isinstance(status, int):
                raise RemoteFailed(f"the MCP server answered {status}") from None
        spoke = any(isinstance(c, httpx2.RemoteProtocolError) for c in causes)  # reached, then garbled
        if not spoke and (isinstance(exc, TimeoutError) or any(
                isinstance(c, httpx2.TransportError | OSError | TimeoutError) for c in causes)):
            raise Unreachable() from None
        raise RemoteFailed(f"the MCP server failed: {type(causes[-1]).__name__}: {str(causes[-1])[:300]}") from None


def _verify_mcp(policy: OutboundPolicy, s: dict[str, Any]) -> list[dict[str, Any]] | None:
    if s.get("command"):
        raise ValidationFailed("a stdio MCP server (command) is checked when runyard's MCP client starts it",
                               code="verify_unsupported", details={"type": "mcp"})
    if _mcp_available():
        import asyncio

        return asyncio.run(_mcp_tools(policy, s))  # kept on the connection: GET /mcp-tools
    # Without the MCP SDK the check can only say the URL is allowed and answers.
    with pinned_client(policy, {**s, "auth": None}) as client:
        client.headers.update(s.get("headers") or {})
        response, _ = _get(client, s["url"], cap=1 << 20)
    if response.status_code >= 500:
        raise RemoteFailed(f"the server answered {response.status_code}")
    return None


def _metadata_mcp(policy: OutboundPolicy, s: dict[str, Any]) -> dict[str, Any]:
    if s.get("command") or not _mcp_available():
        raise ValidationFailed("a stdio MCP server's tools are listed when runyard's MCP client starts it",
                               code="metadata_unsupported", details={"type": "mcp"})
    import asyncio

    return _tools_metadata(asyncio.run(_mcp_tools(policy, s)))


def _tools_metadata(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tools": [{"name": t.get("name"), "description": t.get("description"),
                       "input_schema": t.get("inputSchema") or t.get("input_schema")} for t in tools[:MAX_OPERATIONS]],
            "truncated": len(tools) > MAX_OPERATIONS}


VERIFIERS: dict[str, Callable[[OutboundPolicy, dict[str, Any]], Any]] = {
    "postgres": _verify_postgres, "mysql": _verify_mysql, "http": _verify_http, "openapi": _verify_http,
    "odata": _verify_odata, "s3": _verify_s3, "mcp": _verify_mcp,
}
METADATA: dict[str, Callable[[OutboundPolicy, dict[str, Any]], dict[str, Any]]] = {
    "postgres": _metadata_postgres, "mysql": _metadata_mysql, "http": _metadata_openapi,
    "openapi": _metadata_openapi, "odata": _metadata_odata, "s3": _metadata_s3, "mcp": _metadata_mcp,
}

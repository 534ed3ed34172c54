"""Connections' tests: one runyard server (per backend) allowed to reach loopback
(RUNYARD_ALLOWED_HOSTS=127.0.0.1), and the real systems it connects to on loopback: this
machine's PostgreSQL and MariaDB, small HTTP servers serving documents, moto's S3."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.servers import PgDatabase, Server, free_port

PG_HOST, PG_PORT = "127.0.0.1", 5432
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", int(os.environ.get("RUNYARD_TEST_MARIADB_PORT", "3306"))


@pytest.fixture(scope="package")
def conn_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=tmp_path_factory.mktemp(f"connections-{backend}"), database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_ALLOWED_HOSTS": "127.0.0.1"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()


@pytest.fixture(scope="package")
def admin(conn_server: Server) -> Iterator[httpx.Client]:
    with conn_server.client(timeout=60) as client:
        yield client


class Documents:
    """A loopback HTTP server answering each path with a scripted (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        routes, seen = self.routes, self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append((self.path, dict(self.headers.items())))
                status, headers, body = routes.get(self.path.split("?")[0], (404, {}, b"not found"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Documents:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="package")
def docs() -> Iterator[Documents]:
    with Documents() as server:
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a connect succeeds, reads time out)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    return free_port()

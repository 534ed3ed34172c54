"""Support for the SDK tests: a real HTTP fault-injecting proxy in front of the real
server (no mocked transports), and small tool sources."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-encoding"}


@dataclass
class Fault:
    """What to do to the next ``times`` requests matching ``method`` + ``path`` prefix."""

    method: str
    path: str
    times: int
    kind: str  # "status" | "drop_after_forward" | "cut_stream" | "delay"
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    after_events: int = 0
    delay: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and method == self.method and path.startswith(self.path)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FaultProxy:
    """A threaded HTTP server on loopback that forwards to the real runyard server,
    except for the faults it is told to inject. Every response closes its connection,
    so each client attempt is a fresh, observable request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail(self, method: str, path: str, times: int, status: int = 503, headers: dict[str, str] | None = None,
             body: bytes = b"") -> Fault:
        return self.add(Fault(method, path, times, "status", status=status, headers=headers or {}, body=body))

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.startswith(path)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- request handling ----------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = h.rfile.read(int(headers.get("content-length") or 0))
        with self._lock:
            self.seen.append(Seen(method, path, headers))
        fault = self._take_fault(method, path)
        h.close_connection = True
        if fault is not None and fault.kind == "status":
            h.send_response(fault.status)
            for k, v in fault.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(fault.body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(fault.body)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        fwd_headers = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        with httpx.Client(timeout=httpx.Timeout(60, read=None)) as up, up.stream(
            method, self.upstream + path, headers=fwd_headers, content=body
        ) as resp:
            if fault is not None and fault.kind == "drop_after_forward":
                # The server did the work; the client never hears about it.
                resp.read()
                _abort(h)
                return
            streaming = resp.headers.get("content-type", "").startswith("text/event-stream")
            h.send_response(resp.status_code)
            for k, v in resp.headers.items():
                if k.lower() not in _HOP_BY_HOP:
                    h.send_header(k, v)
            h.send_header("Connection", "close")
            if not streaming:
                data = resp.read()
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                return
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            events = 0
            for chunk in resp.iter_raw():
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                h.wfile.flush()
                events += chunk.count(b"\n\n")
                if fault is not None and fault.kind == "cut_stream" and events >= fault.after_events:
                    _abort(h)  # mid-body, no terminating chunk: a real dropped connection
                    return
            h.wfile.write(b"0\r\n\r\n")


def _abort(h: BaseHTTPRequestHandler) -> None:
    h.wfile.flush()
    try:
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


ADD_CODE = '''
def main(a: int, b: int = 2) -> int:
    """Add two numbers."""
    print(f"adding {a} and {b}")
    return a + b
'''

FAIL_CODE = '''
def main(x: int = 1):
    raise RuntimeError(f"boom {x}")
'''

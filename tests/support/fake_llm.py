"""A scripted OpenAI-compatible server on loopback: a real HTTP server (http.server in a
thread) answering ``POST …/chat/completions`` from a queue of fixtures, in order, and
recording every request it gets (so tests can assert what a prompt held).

A fixture is a ``Reply``: a status, a JSON body or raw bytes, headers and a delay before
answering. Helpers make the usual ones: ``answer(text)``, ``json_answer(obj)``,
``tool_call(name, args)``, ``status(429, retry_after=…)``, ``malformed()``, ``slow(s)``,
``computed(fn)`` (an answer made from the request).
With the queue empty it answers 500 ``no fixture left`` (a test that calls more than it
scripted sees it)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.servers import PgDatabase, Server

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a JSON value, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    compute: Callable[[Any], Any] | None = None  # the body from the request's (for calls made concurrently)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def prompt(self) -> str:
        """Every message's content, joined: what the model was shown."""
        return "\n".join(str(m.get("content") or "") for m in (self.body or {}).get("messages", []))


def completion(message: dict[str, Any], *, usage: dict[str, int] | None = None, model: str = "fake-model",
               finish_reason: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage if usage is not None else dict(USAGE)}


def answer(text: str, **kwargs: Any) -> Reply:
    return Reply(body=completion({"role": "assistant", "content": text}, **kwargs))


def json_answer(value: Any, **kwargs: Any) -> Reply:
    return answer(json.dumps(value), **kwargs)


def tool_call(name: str, arguments: dict[str, Any], **kwargs: Any) -> Reply:
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return Reply(body=completion({"role": "assistant", "content": None, "tool_calls": [call]},
                                 finish_reason="tool_calls", **kwargs))


def status(code: int, *, retry_after: str | None = None, message: str = "scripted failure") -> Reply:
    return Reply(status=code, body={"error": {"message": message, "type": "server_error"}},
                 headers={"Retry-After": retry_after} if retry_after is not None else {})


def computed(answer_of: Callable[[Any], Any], **kwargs: Any) -> Reply:
    """A JSON answer made from the request's body by ``answer_of`` (its content is the JSON of
    what it returns), so that calls made concurrently get their own answers in any order."""
    return Reply(compute=lambda body: completion({"role": "assistant",
                                                  "content": json.dumps(answer_of(body))}, **kwargs))


def malformed() -> Reply:
    """A 200 whose body is not JSON at all."""
    return Reply(body=b'{"choices": [ this is not json')


def slow(delay_s: float, then: Reply | None = None) -> Reply:
    reply = then or answer("too late")
    reply.delay_s = delay_s
    return reply


class FakeLLM:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with fake._lock:
                    fake.requests.append(Recorded(self.path, dict(self.headers), body))
                    reply = fake.replies.popleft() if fake.replies else status(500, message="no fixture left")
                if not self.path.endswith("/chat/completions"):
                    reply = status(404, message=f"no route {self.path}")
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.compute(body) if reply.compute is not None else reply.body
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *replies: Reply) -> None:
        """Replace the queue with ``replies`` and forget the requests seen so far."""
        with self._lock:
            self.replies = deque(replies)
            self.requests = []

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def server_with_scripted_model(backend: str, data_dir: Path, fake: FakeLLM) -> Iterator[Server]:
    """A runyard server allowed to call ``fake``, configured as its default provider."""
    pg = PgDatabase.create() if backend == "postgres" else None
    srv = Server(data_dir=data_dir, database_url=pg.url if pg else None,
                 extra_env={"RUNYARD_OUTBOUND_ALLOW": "127.0.0.1"})
    srv.start()
    try:
        with srv.client(timeout=60) as admin:
            made = admin.post("/llm/providers", json={"name": "scripted", "base_url": fake.base_url,
                                                      "api_key": "sk-test", "default_model": "fake-model",
                                                      "timeout_s": 1.5, "max_retries": 1})
            assert made.status_code == 201, made.text
        yield srv
    finally:
        srv.stop()
        if pg:
            pg.drop()

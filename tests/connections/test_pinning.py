"""The outbound-host policy's pinning: a host is resolved once, checked, and the connection
made to the address that was checked (the name kept for Host and TLS); the allow-list comes
from RUNYARD_ALLOWED_HOSTS and its older name."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from runyard.config import Settings
from runyard.services.errors import ValidationFailed
from runyard.services.outbound import OutboundPolicy, PinnedTransport


class Rebinding:
    """A resolver answering a public address first and loopback afterwards (DNS rebinding)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls = 0

    def __call__(self, host: str, port: int) -> list[str]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [answer]


def test_pin_resolves_once_and_refuses_what_it_resolves_to():
    resolver = Rebinding(["127.0.0.1"])
    policy = OutboundPolicy((), resolver=resolver)
    with pytest.raises(ValidationFailed) as caught:
        policy.pin("db.example", 5432)
    assert caught.value.code == "outbound_host_refused" and resolver.calls == 1
    assert OutboundPolicy(("127.0.0.1",), resolver=resolver).pin("db.example", 5432) == "127.0.0.1"
    # a host allowed by name passes whatever it resolves to, and is still pinned
    assert OutboundPolicy(("db.example",), resolver=Rebinding(["10.0.0.7"])).pin("db.example", 5432) == "10.0.0.7"


def test_pinned_transport_connects_to_the_checked_address_with_the_name_as_host():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.headers["Host"])
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        resolver = Rebinding(["127.0.0.1", "169.254.169.254"])
        policy = OutboundPolicy(("127.0.0.1",), resolver=resolver)
        with httpx.Client(transport=PinnedTransport(policy), follow_redirects=False, timeout=5) as client:
            response = client.get(f"http://api.example:{port}/")
        assert response.status_code == 302 and seen == [f"api.example:{port}"]  # redirect not followed
        assert resolver.calls == 1
        # the next request resolves again: now to the metadata address, refused before connecting
        with httpx.Client(transport=PinnedTransport(policy), timeout=5) as client, \
                pytest.raises(ValidationFailed) as caught:
            client.get(f"http://api.example:{port}/")
        assert caught.value.code == "outbound_host_refused" and len(seen) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_allowed_hosts_variable_and_its_older_name(monkeypatch):
    monkeypatch.setenv("RUNYARD_ALLOWED_HOSTS", "10.0.0.0/8")
    monkeypatch.setenv("RUNYARD_OUTBOUND_ALLOW", "127.0.0.1")
    policy = OutboundPolicy.from_setting(Settings().outbound_allow)
    assert policy.check("http://10.1.2.3/x") and policy.check("http://127.0.0.1:9/x")
    monkeypatch.delenv("RUNYARD_OUTBOUND_ALLOW")
    with pytest.raises(ValidationFailed):
        OutboundPolicy.from_setting(Settings().outbound_allow).check("http://127.0.0.1:9/x")

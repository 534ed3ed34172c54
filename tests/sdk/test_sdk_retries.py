"""Retries through a real HTTP proxy that injects failures in front of the real server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from runyard import (
    APIConnectionError,
    APITimeoutError,
    Client,
    RateLimitError,
    ServerError,
    ValidationError,
)
from tests.support.sdk import Fault, FaultProxy


def _runs_in_session(client: Client, session: str) -> list[str]:
    return [r.id for r in client.runs.list(session=session)]


def _envelope(code: str, message: str, request_id: str, **details: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details,
                                 "request_id": request_id}}).encode()


def test_503s_then_success_creates_exactly_one_run(
    proxy: FaultProxy, client: Client, make_client: Callable[..., Client], add_tool: str, unique: str
) -> None:
    proxy.fail("POST", "/api/v1/runs", times=2, status=503)
    via_proxy = make_client(base_url=proxy.url, max_retries=2)
    run = via_proxy.runs.create(add_tool, {"a": 1}, tags={"session": unique}, wait=30)
    assert run.output == 3
    attempts = proxy.requests_to("POST", "/api/v1/runs")
    assert len(attempts) == 3
    keys = {a.headers.get("idempotency-key") for a in attempts}
    assert len(keys) == 1 and None not in keys  # one key, reused by every retry
    assert _runs_in_session(client, unique) == [run.id]


def test_lost_response_is_retried_idempotently(
    proxy: FaultProxy, client: Client, make_client: Callable[..., Client], add_tool: str, unique: str
) -> None:
    # The server receives and executes the create, but the connection dies before the
    # answer reaches the client: the retry must return that same run, not a second one.
    proxy.add(Fault("POST", "/api/v1/runs", times=2, kind="drop_after_forward"))
    via_proxy = make_client(base_url=proxy.url, max_retries=3)
    run = via_proxy.runs.create(add_tool, {"a": 5}, tags={"session": unique})
    assert len(proxy.requests_to("POST", "/api/v1/runs")) == 3
    assert _runs_in_session(client, unique) == [run.id]
    assert client.runs.wait(run, timeout=30).output == 7


def test_retry_after_is_honoured(
    proxy: FaultProxy, client: Client, make_client: Callable[..., Client], add_tool: str, unique: str
) -> None:
    proxy.fail("POST", "/api/v1/runs", times=1, status=429, headers={"Retry-After": "2", "Content-Type": "application/json"},
               body=_envelope("rate_limited", "slow down", "req_rl"))
    via_proxy = make_client(base_url=proxy.url, max_retries=2)
    started = time.monotonic()
    run = via_proxy.runs.create(add_tool, {"a": 1}, tags={"session": unique})
    elapsed = time.monotonic() - started
    # Without the header the first backoff is at most 0.5 s.
    assert elapsed >= 2.0
    assert _runs_in_session(client, unique) == [run.id]


def test_retries_exhausted_raise_the_last_error(proxy: FaultProxy, make_client: Callable[..., Client]) -> None:
    proxy.fail("GET", "/api/v1/tools", times=10, status=500, headers={"Content-Type": "application/json"},
               body=_envelope("internal_error", "kaput", "req_500"))
    with pytest.raises(ServerError) as exc:
        make_client(base_url=proxy.url, max_retries=1).tools.list()
    assert (exc.value.status, exc.value.code, exc.value.request_id) == (500, "internal_error", "req_500")
    assert len(proxy.requests_to("GET", "/api/v1/tools")) == 2


def test_rate_limit_error_without_retries(proxy: FaultProxy, make_client: Callable[..., Client]) -> None:
    proxy.fail("GET", "/api/v1/tools", times=1, status=429, headers={"Retry-After": "9", "X-Request-ID": "req_x"})
    with pytest.raises(RateLimitError) as exc:
        make_client(base_url=proxy.url, max_retries=0).tools.list()
    assert exc.value.retry_after == 9.0 and exc.value.request_id == "req_x"


def test_retryable_conflict_is_retried_but_plain_conflict_is_not(
    proxy: FaultProxy, make_client: Callable[..., Client]
) -> None:
    proxy.fail("GET", "/api/v1/tools", times=1, status=409, headers={"Content-Type": "application/json"},
               body=_envelope("busy", "locked", "req_c", retryable=True))
    assert make_client(base_url=proxy.url, max_retries=1).tools.list() is not None
    assert len(proxy.requests_to("GET", "/api/v1/tools")) == 2


def test_non_retryable_statuses_fail_fast(proxy: FaultProxy, make_client: Callable[..., Client]) -> None:
    proxy.fail("GET", "/api/v1/tools", times=5, status=400, headers={"Content-Type": "application/json"},
               body=_envelope("bad_request", "no", "req_b"))
    with pytest.raises(ValidationError) as exc:
        make_client(base_url=proxy.url, max_retries=3).tools.list()
    assert exc.value.request_id == "req_b"
    assert len(proxy.requests_to("GET", "/api/v1/tools")) == 1


def test_connection_refused_is_api_connection_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=1) as c:
        started = time.monotonic()
        with pytest.raises(APIConnectionError) as exc:
            c.tools.list()
        assert not isinstance(exc.value, APITimeoutError)
        assert time.monotonic() - started >= 0.3  # one backoff happened


def test_client_timeout_is_api_timeout_error(proxy: FaultProxy, make_client: Callable[..., Client]) -> None:
    proxy.add(Fault("GET", "/api/v1/tools", times=5, kind="delay", delay=2.0))
    with pytest.raises(APITimeoutError):
        make_client(base_url=proxy.url, max_retries=0, timeout=0.5).tools.list()
    # A per-call timeout overrides the client's.
    assert make_client(base_url=proxy.url, max_retries=0, timeout=0.5).tools.list(timeout=10) is not None

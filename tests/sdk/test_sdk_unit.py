"""SDK pieces that need no server: configuration, error mapping, SSE parsing, backoff,
code packaging, models."""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard import (
    AuthenticationError,
    Client,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Run,
    ServerError,
    ValidationError,
)
from runyard.sdk._base import MAX_RETRY_AFTER, BaseClient, parse_retry_after
from runyard.sdk._files import resolve_code, slugify, split_file_inputs
from runyard.sdk.errors import APIStatusError, make_status_error
from runyard.sdk.streaming import SSEDecoder, _LogState


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    req = httpx.Request("GET", "http://x/api/v1/y")
    if isinstance(body, dict):
        return httpx.Response(status, json=body, headers=headers, request=req)
    return httpx.Response(status, text=str(body or ""), headers=headers, request=req)


def test_api_key_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNYARD_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="RUNYARD_API_KEY"):
        Client()


def test_constructor_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_API_KEY", "from-env")
    monkeypatch.setenv("RUNYARD_BASE_URL", "http://env-host:9000")
    with Client() as c:
        assert c.api_key == "from-env"
        assert c.base_url == "http://env-host:9000/api/v1"
    with Client(api_key="explicit", base_url="http://arg:1/api/v1/") as c:
        assert c.api_key == "explicit"
        assert c.base_url == "http://arg:1/api/v1"
        assert c.server_url == "http://arg:1"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNYARD_BASE_URL", raising=False)
    with Client(api_key="k") as c:
        assert c.base_url == "http://127.0.0.1:8000/api/v1"


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, ValidationError), (422, ValidationError), (401, AuthenticationError), (403, PermissionDeniedError),
     (404, NotFoundError), (409, ConflictError), (429, RateLimitError), (500, ServerError), (503, ServerError),
     (418, APIStatusError)],
)
def test_error_class_by_status(status: int, cls: type[APIStatusError]) -> None:
    body = {"error": {"code": "some_code", "message": "nope", "details": {"errors": [{"field": "a", "message": "m"}]},
                      "request_id": "req_1"}}
    err = make_status_error(_response(status, body))
    assert type(err) is cls
    assert (err.status, err.code, err.message, err.request_id) == (status, "some_code", "nope", "req_1")
    assert err.body == body
    assert "req_1" in str(err)


def test_validation_error_fields_and_non_envelope_bodies() -> None:
    body = {"error": {"code": "validation_error", "message": "bad", "details": {"errors": [{"field": "a", "message": "x"}]},
                      "request_id": "r"}}
    err = make_status_error(_response(400, body))
    assert isinstance(err, ValidationError)
    assert err.errors == [{"field": "a", "message": "x"}]
    # A proxy's HTML page: the request id still comes from the header.
    err = make_status_error(_response(502, "<html>bad gateway</html>", {"x-request-id": "req_h"}))
    assert isinstance(err, ServerError)
    assert err.code == "http_502" and err.request_id == "req_h"


def test_rate_limit_retry_after() -> None:
    err = make_status_error(_response(429, {"error": {"code": "rate_limited", "message": "slow"}}, {"Retry-After": "7"}))
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 7.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "2.5"})) == 2.5
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500"})) == 1.5
    assert parse_retry_after(httpx.Headers({})) is None
    date = parse_retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert date == 0.0  # in the past
    assert parse_retry_after(httpx.Headers({"retry-after": "garbage"})) is None


def test_retry_delay_backoff_jitter_and_cap() -> None:
    delays = [BaseClient._retry_delay(n, None) for n in range(8)]
    for n, d in enumerate(delays):
        base = min(0.5 * 2**n, 8.0)
        assert 0.75 * base <= d <= base
    assert BaseClient._retry_delay(0, _response(429, {}, {"Retry-After": "3"})) == 3.0
    assert BaseClient._retry_delay(0, _response(429, {}, {"Retry-After": "3600"})) == MAX_RETRY_AFTER


def test_should_retry_policy() -> None:
    assert BaseClient._should_retry(_response(503))
    assert BaseClient._should_retry(_response(429))
    assert BaseClient._should_retry(_response(408))
    assert not BaseClient._should_retry(_response(400))
    assert not BaseClient._should_retry(_response(404))
    assert not BaseClient._should_retry(_response(409, {"error": {"code": "c", "details": {}}}))
    assert BaseClient._should_retry(_response(409, {"error": {"code": "c", "details": {"retryable": True}}}))


def test_sse_decoder() -> None:
    lines = ["retry: 1000", "", ": keep-alive", "", "event: log", "id: 12", "data: a", "data: ", "data: b", "",
             "event: end", "data: {\"status\": \"succeeded\"}", ""]
    events = list(SSEDecoder().iter(lines))
    # A lone ``retry:`` or a comment dispatches nothing.
    assert [(e.event, e.id, e.data) for e in events] == [
        ("log", "12", "a\n\nb"), ("end", None, '{"status": "succeeded"}')
    ]
    assert events[0].retry == 1000
    assert events[1].json() == {"status": "succeeded"}


def test_log_state_resume_point() -> None:
    state = _LogState("run_1", 0)
    decoder = SSEDecoder()
    out: list[str] = []
    for line in ["event: log", "id: 4", "data: one", "", "event: log", "id: 9", "data: two", "data: ", ""]:
        ev = decoder.decode(line)
        if ev:
            out += state.feed(ev)
    assert out == ["one", "two", ""]
    assert state.last_event_id == "9"
    assert state.request(10).headers == {"Accept": "text/event-stream", "Last-Event-ID": "9"}
    ev = SSEDecoder()
    for line in ["event: end", 'data: {"status": "failed"}', ""]:
        e = ev.decode(line)
    assert e is not None and state.feed(e) == [] and state.ended and state.status == "failed"


def test_slugify() -> None:
    assert slugify("My Tool.v2") == "my-tool-v2"
    assert slugify("add_numbers") == "add_numbers"
    assert slugify("___") == "tool"
    assert len(slugify("x" * 100)) == 64


def sample_tool(a: int) -> int:
    return a * 2


def _decorate(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@_decorate
def decorated_tool(x: int) -> int:
    return x + 1


def test_resolve_code_function_variants() -> None:
    src = resolve_code(decorated_tool)
    assert src.code is not None and src.code.startswith("def decorated_tool(x: int)")
    assert "@_decorate" not in src.code
    namespace: dict[str, Any] = {}
    exec(src.code, namespace)
    assert namespace["decorated_tool"](1) == 2

    def nested(a: int) -> int:
        return a

    assert resolve_code(nested).code == "def nested(a: int) -> int:\n    return a\n"
    with pytest.raises(ValueError, match="named function"):
        resolve_code(lambda x: x)


def test_resolve_code_function_file_dir(tmp_path: Path) -> None:
    src = resolve_code(sample_tool)
    assert src.code is not None and src.code.startswith("def sample_tool(")
    assert (src.default_name, src.default_entrypoint) == ("sample_tool", "sample_tool")

    f = tmp_path / "my_tool.py"
    f.write_text("def main():\n    return 1\n")
    src = resolve_code(f)
    assert src.file is not None and src.file.field == "file" and src.default_name == "my_tool"
    assert resolve_code(str(f)).file is not None  # an existing path given as str

    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (pkg / "main.py").write_text("def main():\n    return 1\n")
    (pkg / "helpers").mkdir()
    (pkg / "helpers" / "util.py").write_text("X = 1\n")
    src = resolve_code(pkg)
    assert src.file is not None and isinstance(src.file.source, bytes)
    names = zipfile.ZipFile(io.BytesIO(src.file.source)).namelist()
    assert sorted(names) == ["helpers/util.py", "main.py"]  # no __pycache__

    assert resolve_code("def main():\n    return 1\n").code is not None
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    with pytest.raises(ValueError, match=r"\.py file"):
        resolve_code(notes)
    with pytest.raises(FileNotFoundError):
        resolve_code(tmp_path / "missing.py")


def test_split_file_inputs(tmp_path: Path) -> None:
    f = tmp_path / "data.csv"
    f.write_text("a,b\n")
    plain, files = split_file_inputs({"n": 1, "data": f})
    assert plain == {"n": 1}
    assert [(p.field, p.filename, p.content_type) for p in files] == [("data", "data.csv", "text/csv")]
    with pytest.raises(FileNotFoundError):
        split_file_inputs({"data": tmp_path / "missing"})


def test_models_keep_unknown_fields() -> None:
    run = Run.model_validate({"id": "run_1", "status": "succeeded", "brand_new_field": {"x": 1},
                              "created_at": "2025-01-01T00:00:00Z", "error": None})
    assert run.brand_new_field == {"x": 1}  # type: ignore[attr-defined]
    assert run.is_terminal and run.succeeded
    d = run.to_dict()
    assert d["brand_new_field"] == {"x": 1}
    assert d["created_at"].startswith("2025-01-01T00:00:00")


def test_string_lists_are_not_exploded() -> None:
    from runyard.sdk.resources.tools import _str_list

    assert _str_list("numpy>=2\n# comment\n\npandas  # inline\n", lines=True) == ["numpy>=2", "pandas"]
    assert _str_list("API_KEY", lines=False) == ["API_KEY"]
    assert _str_list(("a", "b"), lines=False) == ["a", "b"]
    assert _str_list(None, lines=True) is None
